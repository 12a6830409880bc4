"""The `aks-ray` command: one subcommand per pipeline step, and `run` for all of them.

Each subcommand lives in its own module, imported only when it runs, so that
the base install (no ray, no torch) can orchestrate the aks and kubeconfig
targets on a GitHub runner.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from . import __version__, config, gha, versions
from .errors import EXIT_INTERRUPTED, AksRayError, ConfigError

log = logging.getLogger("aks_ray")

# (command words, module, the option sections it accepts, one-line help)
COMMANDS: list[tuple[tuple[str, ...], str, tuple[str, ...], str]] = [
    (("run",), "pipeline", ("common", "training", "kube", "azure"), "the whole pipeline for --target (local, kubeconfig or aks)"),
    (
        ("validate",),
        "validate",
        ("common", "training", "kube", "azure", "verdict"),
        "check every input and exit 2 listing the bad ones; touches nothing",
    ),
    # plan reads the training and kube sections too: its preflight checks that the
    # Ray head and workers fit on the Ray node pool.
    (
        ("infra", "plan"),
        "infra",
        ("common", "training", "kube", "azure"),
        "preflight (quota, VM sizes, the Ray pods' fit), terraform init and plan to a saved plan file, summarised",
    ),
    (("infra", "apply"), "infra", ("common", "azure"), "apply exactly the saved plan and read the outputs"),
    (("infra", "destroy"), "infra", ("common", "azure"), "destroy the Azure resources per --destroy-policy"),
    (("credentials",), "credentials", ("common", "azure", "kube"), "write a kubeconfig for the AKS cluster (OIDC, no stored secret)"),
    (("operator", "install"), "operator", ("common", "kube"), "install or upgrade the KubeRay operator with Helm and wait for it"),
    (("job", "submit"), "job", ("common", "training", "kube"), "create the RayJob for the training directory"),
    (("job", "wait"), "job", ("common", "training", "kube"), "follow the RayJob to a final state, streaming its logs"),
    (("collect",), "collect", ("common", "training", "kube"), "gather logs, events, metrics and the model into --output-dir"),
    (("cleanup",), "cleanup", ("common", "kube", "azure"), "delete what this run created, and nothing else"),
    (("dashboard",), "dashboard", ("common", "kube"), "port-forward the Ray dashboard of the run's cluster to localhost"),
    (
        ("verdict",),
        "verdict",
        ("common", "verdict"),
        "judge metrics.json in --output-dir: floor, baseline comparison, report (and PR comment); exit 1 on fail",
    ),
]


def build_parser() -> argparse.ArgumentParser:
    versions_text = "\n".join(f"  {name}: {version}" for name, version in versions.versions_table())
    parser = argparse.ArgumentParser(
        prog="aks-ray",
        description="Train a model on a Ray cluster: on AKS, on any Kubernetes cluster, or locally.",
        epilog=(
            "Every option can also be set as an environment variable (shown in each subcommand's --help).\n\n"
            f"Pinned versions:\n{versions_text}"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"aks-ray {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for words, module, sections, help_text in COMMANDS:
        if len(words) == 1:
            sub = subparsers.add_parser(words[0], help=help_text, description=help_text)
        else:
            if words[0] not in groups:
                parent = subparsers.add_parser(
                    words[0], help=f"{words[0]} steps: {', '.join(w[1] for w, *_ in COMMANDS if w[0] == words[0])}"
                )
                groups[words[0]] = parent.add_subparsers(dest="action", metavar="ACTION", required=True)
            sub = groups[words[0]].add_parser(words[1], help=help_text, description=help_text)
        sub.set_defaults(module=module, words=words)
        config.add_arguments(sub, sections)
    return parser


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr, force=True)


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    gha.use_workflow_commands(config.running_in_actions())
    args = build_parser().parse_args(argv)
    try:
        cfg = config.load(vars(args))
        setup_logging(cfg.common.log_level)
        module = importlib.import_module(f"aks_ray.{args.module}")
        return module.main(cfg, args.words)
    except ConfigError as exc:
        for problem in exc.problems:
            gha.error(problem, title="aks-ray: invalid input")
        log.error("nothing was started or created; fix the input(s) above and run again")
        return exc.exit_code
    except AksRayError as exc:
        gha.error(str(exc), title=f"aks-ray {' '.join(args.words)} failed")
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
