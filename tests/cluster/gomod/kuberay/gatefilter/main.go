// Command gatefilter is the operator image's entrypoint (/manager): it runs
// the real KubeRay operator (/ray-operator) with the same arguments, except
// that --feature-gates entries which that build does not know and which are
// set to false are dropped. A feature that a build does not have is off, so
// dropping them changes nothing, and the 1.7.0 chart's default flags then
// start the older operator built here. An unknown gate set to true is kept,
// so the operator refuses it as it would anyway.
//
// The known gates are read from /known-feature-gates, one a line, written at
// build time from the operator module's pkg/features.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"
)

const (
	realOperator = "/ray-operator"
	knownGates   = "/known-feature-gates"
)

func main() {
	known, err := readKnown(knownGates)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gatefilter: %v\n", err)
		os.Exit(1)
	}
	args, dropped := filterArgs(os.Args[1:], known)
	if len(dropped) > 0 {
		fmt.Fprintf(os.Stderr, "gatefilter: dropped feature gates this operator build does not have (all false): %s\n",
			strings.Join(dropped, ","))
	}
	err = syscall.Exec(realOperator, append([]string{realOperator}, args...), os.Environ())
	fmt.Fprintf(os.Stderr, "gatefilter: exec %s: %v\n", realOperator, err)
	os.Exit(1)
}

func readKnown(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	known := map[string]bool{}
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if name := strings.TrimSpace(scanner.Text()); name != "" {
			known[name] = true
		}
	}
	return known, scanner.Err()
}

// filterArgs rewrites --feature-gates=a=true,b=false (or "--feature-gates a=..."),
// dropping unknown gates set to false, and returns the gates it dropped.
func filterArgs(args []string, known map[string]bool) ([]string, []string) {
	out := make([]string, 0, len(args))
	var dropped []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		for _, flag := range []string{"--feature-gates", "-feature-gates"} {
			if a == flag && i+1 < len(args) {
				kept, d := filterGates(args[i+1], known)
				dropped = append(dropped, d...)
				out = append(out, a, kept)
				i++
				a = ""
				break
			}
			if strings.HasPrefix(a, flag+"=") {
				kept, d := filterGates(strings.TrimPrefix(a, flag+"="), known)
				dropped = append(dropped, d...)
				a = flag + "=" + kept
				break
			}
		}
		if a != "" {
			out = append(out, a)
		}
	}
	return out, dropped
}

func filterGates(value string, known map[string]bool) (string, []string) {
	var kept, dropped []string
	for _, pair := range strings.Split(value, ",") {
		name, setting, _ := strings.Cut(strings.TrimSpace(pair), "=")
		if name == "" {
			continue
		}
		if !known[name] && strings.EqualFold(strings.TrimSpace(setting), "false") {
			dropped = append(dropped, name)
			continue
		}
		kept = append(kept, strings.TrimSpace(pair))
	}
	return strings.Join(kept, ","), dropped
}
