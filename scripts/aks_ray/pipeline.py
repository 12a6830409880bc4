"""The pipeline, declared once: its steps in order, where each applies, when it runs, and the command it is.

`aks-ray run` executes STEPS for --target in this process; the composite
action runs the same list, one step per phase, generated from it
(scripts/tools/action_steps.py writes action.yml's steps, if: conditions and
env blocks; tests/unit/test_action_yml.py keeps the two equal). Either way a
step learns what earlier steps did only from the run folder (rundir.py).

When a step runs, in GitHub's terms:
- `after=None`: only while every earlier step succeeded (a step's implicit success());
- `after="submit"`: always once that step was attempted, whether it succeeded,
  failed or was cancelled, so that collection and clean-up follow every
  submission and destroy follows every apply.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from . import cleanup, collect, commandline, config, credentials, infra, job, local, operator, rayjob, report, validate, verdict
from .config import TARGETS, Config
from .errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_OPERATIONAL, AksRayError
from .rundir import CANCELLED, FAILURE, SUCCESS, StepRecord

log = logging.getLogger(__name__)

ALL_SECTIONS = validate.SECTIONS  # every option section
KUBE_TARGETS = ("kubeconfig", "aks")


@dataclass(frozen=True)
class Step:
    """One phase of the pipeline: an `aks-ray` subcommand, or something only the action does (command None)."""

    id: str  # the action step's id, the name in steps.json and, when timed, in timings.json
    title: str  # the action step's name, before its "(target ...)" suffix
    why: str  # the comment above the action step
    targets: tuple[str, ...] = TARGETS
    after: str | None = None  # None: only while every earlier step succeeded; else always once that step was attempted
    command: tuple[str, ...] = ()  # the aks-ray subcommand; () for a step only the action has (Python, install, upload)
    function: Callable[[Config], int] | None = None
    sections: tuple[str, ...] = ()  # the option sections the command reads
    help: str = ""
    timed: bool = True  # False for steps that time their own phases (collect, local) or none (validate)
    recorded: bool = True  # False for validate, which writes nothing: bad input leaves no output folder
    # Why this step does nothing for this configuration ('' when it runs): it then succeeds at once, saying so.
    skip_when: Callable[[Config], str] | None = None


STEPS: tuple[Step, ...] = (
    Step("python", "Set up Python", "The package is tested on one Python; pin it without touching the caller's PATH."),
    Step(
        "validate",
        "Validate inputs",
        "Every input is checked before anything is installed or created (exit 2 names the input).\n"
        "The configuration needs only the standard library, so this runs from the action's source.",
        command=("validate",),
        function=validate.main,
        sections=validate.SECTIONS,
        help=validate.HELP,
        timed=False,
        recorded=False,
    ),
    Step(
        "install",
        "Install aks-ray",
        "A private venv keeps the action's pinned dependencies out of the caller's environment.\n"
        "Only the local target trains on the runner, so only it pays for ray and torch (the train extra).\n"
        "Editable, so the package finds the action's own training/, terraform/ and manifests/ beside it.",
    ),
    Step(
        "terraform",
        "Look for the pinned Terraform",
        "The aks target drives Terraform, which GitHub's runner images do not have: is the pinned version here already?",
        targets=("aks",),
    ),
    # plan reads the training and kube sections too: its preflight checks that the Ray head and workers fit on the Ray pool.
    Step(
        "infra-plan",
        "Plan the Azure infrastructure",
        "Terraform plans to a saved file first, so apply does exactly what the log showed.",
        targets=("aks",),
        command=("infra", "plan"),
        function=infra.plan_step,
        sections=ALL_SECTIONS,
        help="preflight (Kubernetes version, quota, VM sizes, the Ray pods' fit), terraform init and plan to a saved plan file, summarised",
    ),
    Step(
        "infra-apply",
        "Apply the Azure infrastructure",
        "Creates or updates the AKS cluster per infra-mode (reuse and skip change nothing).",
        targets=("aks",),
        command=("infra", "apply"),
        function=infra.apply_step,
        sections=("common", "azure"),
        help="apply exactly the saved plan and read the outputs",
    ),
    Step(
        "credentials",
        "Get cluster credentials",
        "OIDC to Azure, then a kubeconfig for the cluster: no stored secret anywhere.",
        targets=("aks",),
        command=("credentials",),
        function=credentials.main,
        sections=("common", "azure", "kube"),
        help="write a kubeconfig for the AKS cluster (OIDC, no stored secret)",
    ),
    Step(
        "operator",
        "Install the KubeRay operator",
        "The RayJob needs the KubeRay operator and its CRDs on the cluster.",
        targets=KUBE_TARGETS,
        command=("operator", "install"),
        function=operator.main,
        skip_when=config.operator_left_to_cluster,
        sections=("common", "kube", "azure"),
        help="install or upgrade the KubeRay operator with Helm and wait for it (on a pull request's aks run: the cluster's, left alone)",
    ),
    Step(
        "submit",
        "Submit the training job",
        "Creates the RayJob; submission and waiting are separate so a failed submit is told apart from a failed job.",
        targets=KUBE_TARGETS,
        command=("job", "submit"),
        function=job.submit_step,
        sections=("common", "training", "kube"),
        help="create the RayJob for the training directory",
    ),
    Step(
        "wait",
        "Wait for the training job",
        "Streams the driver log live and fails the step if the job fails or passes its deadline.",
        targets=KUBE_TARGETS,
        command=("job", "wait"),
        function=job.wait_step,
        sections=("common", "training", "kube"),
        help="follow the RayJob to a final state, streaming its logs",
    ),
    Step(
        "local",
        "Train on a local Ray cluster",
        "The local target starts Ray, trains, writes the outputs and stops Ray in one command.",
        targets=("local",),
        command=("local",),
        function=local.run,
        sections=("common", "training"),
        help="the local target's one step: start Ray on this machine, train, write the outputs, stop Ray",
        timed=False,
    ),
    Step(
        "collect",
        "Collect logs, metrics and the model",
        "Logs, events, metrics and the model are most needed when something failed: run whenever a job was submitted.",
        targets=KUBE_TARGETS,
        after="submit",
        command=("collect",),
        function=collect.main,
        sections=("common", "training", "kube"),
        help="gather logs, events, metrics and the model into --output-dir",
        timed=False,
    ),
    Step(
        "verdict",
        "Judge the model",
        "Floor and baseline decide pass or fail once the outputs exist, before they are uploaded (issue 14).\n"
        "The only step after validate given the job's token: baseline auto reads artifacts, comment writes to the pull request.",
        command=("verdict",),
        function=verdict.main,
        sections=("common", "verdict"),
        help="judge metrics.json in --output-dir: floor, baseline comparison, report (and PR comment); exit 1 on fail",
        # Not a phase of the run: the total time it compares must not include its own API calls.
        timed=False,
    ),
    Step(
        "upload",
        "Upload the outputs",
        "The output folder outlives the runner only as an artifact; uploaded on failure too.",
        after="validate",
    ),
    Step(
        "cleanup",
        "Clean up the cluster",
        "Deletes the RayJob and what this run created on the cluster (kept with keep-cluster), pass, fail or cancel.",
        targets=KUBE_TARGETS,
        after="submit",
        command=("cleanup",),
        function=cleanup.main,
        sections=("common", "kube", "azure"),
        help="delete what this run created, and nothing else",
    ),
    Step(
        "destroy",
        "Destroy the Azure infrastructure per destroy-policy",
        "Destroys the Azure resources per destroy-policy once apply has run (even if it failed or was cancelled);\n"
        "the policy, infra-mode and the run's result are weighed in Python (infra.should_destroy), tested there.",
        targets=("aks",),
        after="infra-apply",
        command=("infra", "destroy"),
        function=infra.destroy_step,
        sections=("common", "azure"),
        help="destroy the Azure resources per --destroy-policy",
    ),
)

STEP_BY_ID = {step.id: step for step in STEPS}


# ------------------------------------------------------------ pure parts


def steps_for(target: str, steps: Iterable[Step] = STEPS) -> list[Step]:
    """The steps `aks-ray run` executes for a target: those with a command that apply to it."""
    return [step for step in steps if step.function is not None and target in step.targets]


def should_run(step: Step, outcomes: Mapping[str, str]) -> bool:
    """Whether a step runs, given the outcomes of the steps before it (absent: skipped or not reached)."""
    if step.after is None:
        return all(outcome == SUCCESS for outcome in outcomes.values())
    return outcomes.get(step.after) in (SUCCESS, FAILURE, CANCELLED)


def outcome_of(code: int) -> str:
    if code == EXIT_OK:
        return SUCCESS
    return CANCELLED if code == EXIT_INTERRUPTED else FAILURE


def exit_code(outcomes: Mapping[str, str], codes: Mapping[str, int]) -> int:
    """The pipeline's exit code: interrupted if any step was cancelled, else the first failure's, else 0."""
    if CANCELLED in outcomes.values():
        return EXIT_INTERRUPTED
    return next((codes[step] for step, outcome in outcomes.items() if outcome == FAILURE), EXIT_OK)


# ------------------------------------------------------------------ I/O


def run_step(step: Step, cfg: Config) -> int:
    """Run one step's function; record its outcome and time in the run folder, and name a failure in the report."""
    assert step.function is not None
    started = time.monotonic()
    outcome, error = FAILURE, ""
    try:
        reason = step.skip_when(cfg) if step.skip_when else ""
        if reason:
            log.info("%s: nothing to do: %s", " ".join(step.command), reason)
        code = EXIT_OK if reason else step.function(cfg)
        outcome = outcome_of(code)
        return code
    except KeyboardInterrupt:
        outcome, error = CANCELLED, "interrupted (Ctrl-C, or the workflow was cancelled)"
        raise
    except Exception as exc:
        error = str(exc) if isinstance(exc, AksRayError) else f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if step.recorded:
            seconds = time.monotonic() - started
            record = StepRecord(step.id, outcome, round(seconds, 3), error)
            cfg.run_dir.record_step(record)
            if step.timed:
                cfg.run_dir.record_phase(step.id, seconds)
            if error:
                report.record_failure(cfg, record, " ".join(step.command))


def execute(
    cfg: Config,
    steps: Iterable[Step],
    run: Callable[[Step, Config], int] = run_step,
    reload: Callable[[Config], Config] = config.reload,
) -> int:
    """Run the steps in order under the rules above; every step reads its Config anew, as in the action."""
    outcomes: dict[str, str] = {}
    codes: dict[str, int] = {}
    bug: Exception | None = None
    for step in steps:
        if not should_run(step, outcomes):
            log.info("skipping %s: an earlier step did not succeed", " ".join(step.command))
            continue
        try:
            codes[step.id] = run(step, cfg)
        except KeyboardInterrupt:
            codes[step.id] = EXIT_INTERRUPTED
            log.error("interrupted during %s: running the steps that always follow", " ".join(step.command))
        except AksRayError as exc:
            codes[step.id] = exc.exit_code
            commandline.report_error(exc, step.command)
        except Exception as exc:  # a bug: shown with its traceback, and re-raised once clean-up has run
            codes[step.id] = EXIT_OPERATIONAL
            log.exception("aks-ray %s crashed", " ".join(step.command))
            bug = bug or exc
        outcomes[step.id] = outcome_of(codes[step.id])
        cfg = reload(cfg)
    if bug is not None:
        raise bug
    return exit_code(outcomes, codes)


def check_inputs(cfg: Config) -> None:
    """What validate cannot check with the standard library alone, before anything is created (UserError, exit 2)."""
    if cfg.target in KUBE_TARGETS:
        rayjob.render_run(cfg, rayjob.identity(cfg, "aks-ray-check"))  # training dir too big, unreadable files
        operator.chart_source(cfg)  # a chart path that does not exist


def run(cfg: Config) -> int:
    """`aks-ray run`: the whole pipeline for --target, in this process."""
    if cfg.common.dry_run:
        return dry_run(cfg)
    check_inputs(cfg)
    return execute(cfg, steps_for(cfg.target))


# -------------------------------------------------------------- dry run


def dry_run(cfg: Config) -> int:
    """Print what the run would create, touching nothing: no output folder, no cluster call."""
    if cfg.target == "local":
        return local.run(cfg)  # which only prints, under --dry-run
    if cfg.target == "aks":
        variables = infra.terraform_variables(cfg, dt.datetime.now(dt.timezone.utc))
        lines = [
            f"# aks-ray --dry-run (aks): no Azure call was made. Terraform in {cfg.azure.terraform_dir} would plan with these variables:"
        ]
        lines += [f"#   {name} = {json.dumps(value)}" for name, value in variables.items()]
        lines.append(f"# then destroy per --destroy-policy {cfg.azure.destroy_policy} (--infra-mode {cfg.azure.infra_mode}).")
        sys.stdout.write("\n".join(lines) + "\n")
    run_identity = rayjob.identity(cfg, rayjob.new_job_name(cfg))
    objects = rayjob.render_run(cfg, run_identity)
    source = operator.chart_source(cfg)  # a chart path that does not exist is bad input here too
    header = f"# aks-ray --dry-run: the objects of RayJob {run_identity.namespace}/{run_identity.job_name}; nothing was created.\n"
    try:
        operator_objects = operator.render_operator(cfg)
        header += f"# KubeRay operator: {source.describe()}, release {cfg.kube.operator_namespace}/{operator.RELEASE_NAME}\n"
    except Exception as exc:  # no helm, or helm could not fetch or render the chart: say so, and still print the run's objects
        operator_objects = []
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        header += f"# KubeRay operator objects not rendered ({reason}); `aks-ray operator install` would install {source.describe()}\n"
    sys.stdout.write(header + rayjob.to_yaml(operator_objects + objects))
    sys.stdout.flush()
    return EXIT_OK
