// Parse Mermaid blocks read from stdin (separated by a line "%%%%") with mermaid's own parser.
// Run from a folder holding node_modules/mermaid and node_modules/jsdom: node --input-type=module -e "$(cat this)"
import { JSDOM } from "jsdom";
const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false });
const input = await new Promise((resolve) => { let s = ""; process.stdin.on("data", (d) => (s += d)); process.stdin.on("end", () => resolve(s)); });
let failed = 0;
for (const [i, block] of input.split("\n%%%%\n").entries()) {
  try {
    const result = await mermaid.parse(block);
    console.log(`block ${i}: ok ${result.diagramType}`);
  } catch (e) {
    failed++;
    console.log(`block ${i}: ERROR ${String(e.message || e).split("\n").slice(0, 4).join(" | ")}`);
  }
}
process.exit(failed ? 1 : 0);
