"""The Kubernetes objects of one run, rendered from the Config alone (no I/O but reading files).

A run creates three things in --namespace: the Namespace (when missing), a
ConfigMap carrying the training directory, and the RayJob. The RayJob starts
from manifests/rayjob.yaml and is completed here with what depends on options.

How the training code reaches the cluster without any external URL: every file
of --training-dir goes into the ConfigMap; the submitter pod mounts it, copies
it to a plain folder, and `ray job submit` uploads that folder as the job's
working_dir. A ConfigMap holds at most 1 MiB, which is checked here, before
anything is created.

How torch gets into the Ray image (which has none): the job's runtime
environment pip-installs the pinned torch, from PyPI, plus --torch-index-url
when the workflow gives one. With an index of CPU-only wheels, pip prefers the
CPU build `X+cpu` for `torch==X` (a local version sorts above the plain one), a
single wheel (about 190 MB for recent releases), over PyPI's default Linux
wheel: measured for torch 2.13.0, 527 MB plus 2.2 GB of CUDA and triton wheels
(2.72 GB to download, 3.9 GB installed). An image that already has torch X
(--ray-image) satisfies the pin without any download, so clusters without
internet work with such an image. Ray caches the environment per node.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import re
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from . import jobspec, sandbox, versions
from .config import (
    PROJECT_ROOT,
    RAY_POOL_LABEL,
    RAY_POOL_TAINT,
    TRAINING_SKIP_DIRS,
    CommonOptions,
    Config,
    links_leaving,
    ray_version,
    start_deadline,
)
from .errors import UserError
from .rundir import MANAGED_BY, RUN_LABEL, RunIdentity

MANIFESTS_DIR = PROJECT_ROOT / "manifests"
RAYJOB_BASE = MANIFESTS_DIR / "rayjob.yaml"

RAY_GROUP, RAY_VERSION_API = "ray.io", "v1"

# Labels: MANAGED_BY and RUN_LABEL (rundir) find a run's objects; these say what each is and where it came from.
COMPONENT_LABEL = "aks-ray.io/component"
GITHUB_RUN_ID_LABEL = "aks-ray.io/github-run-id"
GITHUB_RUN_ATTEMPT_LABEL = "aks-ray.io/github-run-attempt"
PULL_REQUEST_LABEL = "aks-ray.io/pull-request"
COMMIT_LABEL = "aks-ray.io/commit"

# Where the submitter finds the training directory (see manifests/rayjob.yaml).
SUBMITTER_TRAINING_DIR = "/aks-ray/training"

# A ConfigMap's data may not exceed 1 MiB; keep room for the object around it.
CONFIGMAP_LIMIT_BYTES = 1024 * 1024 - 16 * 1024

# Ray's own pip options for a runtime environment (ray/_private/runtime_env/pip.py in Ray 2.60), which a
# pip_install_options list replaces: --no-cache-dir keeps a 190 MB wheel out of every node's disk cache twice.
RAY_PIP_DEFAULTS = ("--disable-pip-version-check", "--no-cache-dir")
# Kueue's label naming the LocalQueue a job waits in (Kueue v0.17, pkg/controller/constants).
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
# With a queue, how long after the job ends KubeRay deletes the Ray cluster (ttlSecondsAfterFinished). Kueue
# frees the quota when the job ends, so the cluster of a run whose runner was lost holds capacity Kueue counts
# as free for this long; collect, which copies the head's files, runs seconds after the job ends.
QUEUED_CLUSTER_TTL_SECONDS = 600

# On each object a run creates, the moment past which nothing of the run is wanted any more (expires_at);
# `aks-ray job sweep` (kube_sweep.py) deletes what is still there after it.
EXPIRES_AT_ANNOTATION = "aks-ray.io/expires-at"
# After the job ends, collect and cleanup run (minutes); the expiry leaves them this much room on top.
EXPIRY_GRACE_SECONDS = 15 * 60

# The launcher and the command it runs (entrypoint_launcher.py), added to the training directory on the cluster.
LAUNCHER_FILE = "_aks_ray_entrypoint.py"
ARGV_FILE = "_aks_ray_argv.json"
LAUNCHER_SOURCE = Path(__file__).with_name("entrypoint_launcher.py")
# The RayJob's entrypoint: nothing in it that a shell or `ray job submit` could change.
KUBE_ENTRYPOINT = f"python {LAUNCHER_FILE}"

# Files of the training directory that are never code or data the job needs.
_SKIP_DIRS = TRAINING_SKIP_DIRS
_SKIP_SUFFIXES = (".pyc", ".pyo")
_CONFIGMAP_KEY_UNSAFE = re.compile(r"[^-._a-zA-Z0-9]")


def new_job_name(cfg: Config, token: str | None = None) -> str:
    """--job-name, or a fresh name: concurrent runs, even of one workflow run, never collide.

    Short enough that KubeRay's derived names (RayCluster `<name>-xxxxx`, head
    Service `<name>-head-svc`, pods) stay within Kubernetes' 63 characters.
    """
    if cfg.kube.job_name:
        return cfg.kube.job_name
    token = token or secrets.token_hex(3)
    run_id = re.sub(r"[^0-9]", "", cfg.github.run_id)[-10:]
    return f"aks-ray-{run_id}-{token}" if run_id else f"aks-ray-{token}"


def _label_value(value: str) -> str:
    value = re.sub(r"[^-_.A-Za-z0-9]", "-", value)[:63]
    return value.strip("-_.")


def run_labels(cfg: Config, job_name: str) -> dict[str, str]:
    github = cfg.github
    labels = {MANAGED_BY[0]: MANAGED_BY[1], RUN_LABEL: job_name}
    for key, value in (
        (GITHUB_RUN_ID_LABEL, github.run_id),
        (GITHUB_RUN_ATTEMPT_LABEL, github.run_attempt),
        (PULL_REQUEST_LABEL, github.pull_request),
        (COMMIT_LABEL, github.sha),
    ):
        if _label_value(value):
            labels[key] = _label_value(value)
    return labels


def identity(cfg: Config, job_name: str) -> RunIdentity:
    return RunIdentity(job_name=job_name, namespace=cfg.kube.namespace, labels=run_labels(cfg, job_name))


# --------------------------------------------------------------- placement


def node_selector(cfg: Config) -> dict[str, str]:
    """--node-selector, or on the aks target the Ray pool's label."""
    if cfg.kube.node_selector:
        return dict(cfg.kube.node_selector)
    if cfg.target == "aks":
        return {RAY_POOL_LABEL[0]: RAY_POOL_LABEL[1]}
    return {}


def tolerations(cfg: Config) -> list[dict[str, str]]:
    """--tolerations, or on the aks target the Ray pool's taint."""
    items = cfg.kube.tolerations or ((RAY_POOL_TAINT,) if cfg.target == "aks" else ())
    return [{"key": key, "operator": "Equal", "value": value, "effect": effect} for key, value, effect in items]


# ---------------------------------------------------------- training files


def training_files(training_dir: Path) -> list[tuple[str, bytes]]:
    """(relative path, content) of every file the job needs, in a stable order.

    A symlink that leaves the folder is bad input (config.cross_check says so
    first): following it would ship a file of this machine to the cluster.
    """
    leaving = links_leaving(training_dir)
    if leaving:
        raise UserError(
            f"--training-dir {training_dir} holds symlinks that point outside it: {', '.join(leaving)}.",
            "copy those files into the training folder, or remove the links.",
        )
    files = []
    for path in sorted(training_dir.rglob("*")):
        relative = path.relative_to(training_dir)
        if any(part in _SKIP_DIRS or part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and not path.name.endswith(_SKIP_SUFFIXES):
            files.append((relative.as_posix(), path.read_bytes()))
    return files


def configmap_key(index: int, relative: str) -> str:
    """A ConfigMap key for a file path (keys may not hold '/'); the volume maps it back."""
    return f"f{index:03d}-{_CONFIGMAP_KEY_UNSAFE.sub('_', relative.replace('/', '.'))}"[:253]


def render_configmap(cfg: Config, run: RunIdentity, files: list[tuple[str, bytes]]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The ConfigMap with the training directory, and the volume items that lay its files out again."""
    total = sum(len(content) for _, content in files)
    if not files:
        raise UserError(
            f"--training-dir {cfg.training.training_dir} has no files to send to the cluster.",
            "point --training-dir at the folder with your training code.",
        )
    if total > CONFIGMAP_LIMIT_BYTES:
        biggest = sorted(files, key=lambda item: len(item[1]), reverse=True)[:3]
        listing = ", ".join(f"{name} ({len(content) / 1024:.0f} KiB)" for name, content in biggest)
        raise UserError(
            f"--training-dir {cfg.training.training_dir} holds {total / 1024:.0f} KiB; a Kubernetes ConfigMap carries at most "
            f"{CONFIGMAP_LIMIT_BYTES // 1024} KiB (largest: {listing}).",
            "keep only code in the training directory and let the job download its data (--mnist-mirror), "
            "or build an image with the code in it and pass it as --ray-image.",
        )
    text: dict[str, str] = {}
    binary: dict[str, str] = {}
    items = []
    for index, (relative, content) in enumerate(files):
        key = configmap_key(index, relative)
        try:
            # Code stays readable in the ConfigMap (and in --dry-run); data goes as base64.
            text[key] = content.decode("utf-8")
        except UnicodeDecodeError:
            binary[key] = base64.b64encode(content).decode("ascii")
        items.append({"key": key, "path": relative})
    configmap: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": run.configmap_name, "namespace": run.namespace, "labels": {**run.labels, COMPONENT_LABEL: "training-dir"}},
        "immutable": True,
    }
    if text:
        configmap["data"] = text
    if binary:
        configmap["binaryData"] = binary
    return configmap, items


# ----------------------------------------------------------------- RayJob


def image_has_torch(image: str) -> bool:
    """Whether an image's tag says it carries the pinned torch (`...-torch2.13.0`, as manifests/ builds it)."""
    tag = image.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2]
    return f"torch{versions.TORCH_VERSION}" in tag


def installs_torch(cfg: Config) -> bool:
    """Whether the job's runtime environment pip-installs torch (--install-torch)."""
    choice = cfg.kube.install_torch
    return choice == "always" or (choice == "auto" and not image_has_torch(cfg.kube.ray_image))


def runtime_env(cfg: Config) -> dict[str, Any]:
    """The job's runtime environment: the uploaded training directory and, unless the image has it, torch.

    A `pip` runtime environment is not free even when pip has nothing to do: Ray
    clones the image's whole virtual environment for it on every node of every
    run (47 s of the head's start on the project's test cluster, with the 5.7 GB
    CUDA build of torch in the image). An image that carries the pinned torch
    needs none of it.
    """
    threads = str(cfg.training.cpus_per_worker)
    env: dict[str, Any] = {
        "working_dir": SUBMITTER_TRAINING_DIR,
        "env_vars": {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONUNBUFFERED": "1"},
    }
    if installs_torch(cfg):
        packages = [f"torch=={versions.TORCH_VERSION}"]
        # PyPI's default Linux wheel is the CUDA build, which GPU nodes need. For CPU nodes an index of CPU-only
        # wheels (--torch-index-url) is far smaller: pip prefers its `+cpu` build for a plain `torch==X` pin.
        # The project names no index itself; the workflow gives the one it trusts.
        env["pip"] = {"packages": packages}
        if cfg.kube.torch_index_url and not cfg.training.use_gpu:
            # pip_install_options replaces Ray's defaults rather than adding to them: they are kept.
            env["pip"]["pip_install_options"] = [*RAY_PIP_DEFAULTS, "--extra-index-url", cfg.kube.torch_index_url]
    return env


def _resources(cpus: int | str, memory: str, gpus: int = 0) -> dict[str, dict[str, str]]:
    # Requests equal to limits: Ray sizes itself from them, and a pod that uses
    # more memory than it asked for is OOMKilled rather than starving its node.
    limits = {"cpu": str(cpus), "memory": memory}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    return {"requests": dict(limits), "limits": limits}


def _place(pod_spec: dict[str, Any], cfg: Config) -> None:
    selector, tolerate = node_selector(cfg), tolerations(cfg)
    if selector:
        pod_spec["nodeSelector"] = selector
    if tolerate:
        pod_spec["tolerations"] = tolerate


def _label_template(template: dict[str, Any], labels: dict[str, str], component: str) -> None:
    metadata = template.pop("metadata", {})
    metadata["labels"] = {**metadata.get("labels", {}), **labels, COMPONENT_LABEL: component}
    spec = template.pop("spec")
    # metadata first, as people write pod templates.
    template.update({"metadata": metadata, "spec": spec})


def load_base() -> dict[str, Any]:
    with RAYJOB_BASE.open(encoding="utf-8") as handle:
        # Through JSON: the file's YAML anchors (one securityContext for every pod)
        # become separate copies, so nothing printed carries YAML aliases.
        return json.loads(json.dumps(yaml.safe_load(handle)))


def deletion_ttls(common: CommonOptions) -> tuple[int, int]:
    """(DeleteCluster, DeleteSelf) seconds after the job ends: the rules that clean up a run cleanup never reached.

    The Ray cluster (what costs) goes first, at half of --lost-run-ttl, or at --keep-cluster-ttl when the
    user keeps it; the RayJob (the verdict, for whoever looks) half a --lost-run-ttl after the cluster.
    KubeRay 1.7 refuses a DeleteSelf TTL shorter than the DeleteCluster one.
    """
    cluster_ttl = common.keep_cluster_ttl if common.keep_cluster else common.lost_run_ttl // 2
    return cluster_ttl, cluster_ttl + (common.lost_run_ttl - common.lost_run_ttl // 2)


def render_rayjob(cfg: Config, run: RunIdentity, volume_items: list[dict[str, str]], base: dict[str, Any] | None = None) -> dict[str, Any]:
    kube, training = cfg.kube, cfg.training
    job = copy.deepcopy(base if base is not None else load_base())
    job["metadata"] = {"name": run.job_name, "namespace": run.namespace, "labels": {**run.labels, COMPONENT_LABEL: "rayjob"}}
    spec = job["spec"]
    # The command itself travels as a file (launcher_files): the entrypoint is parsed by two shells on its way.
    spec["entrypoint"] = KUBE_ENTRYPOINT
    spec["runtimeEnvYAML"] = yaml.safe_dump(runtime_env(cfg), sort_keys=False)
    # Both count from the RayJob's start; the pre-running one is shorter (config.cross_check), so a
    # cluster that never starts ends with PreRunningDeadlineExceeded, not as a job that ran too long.
    spec["activeDeadlineSeconds"] = cfg.common.timeout
    spec["preRunningDeadlineSeconds"] = start_deadline(cfg.common)
    cluster_ttl, self_ttl = deletion_ttls(cfg.common)
    for rule in spec.get("deletionStrategy", {}).get("deletionRules", []):
        rule["condition"]["ttlSeconds"] = self_ttl if rule["policy"] == "DeleteSelf" else cluster_ttl

    if kube.queue_name:
        queue(job, kube.queue_name)

    cluster = spec["rayClusterSpec"]
    # The image's own Ray version, so that KubeRay's checks (token authentication needs 2.52.0) judge the real one.
    cluster["rayVersion"] = ray_version(kube) or versions.RAY_VERSION

    head = cluster["headGroupSpec"]["template"]
    _label_template(head, run.labels, "ray-head")
    head_container = head["spec"]["containers"][0]
    head_container["image"] = kube.ray_image
    head_container["resources"] = _resources(kube.head_cpus, kube.head_memory)
    _place(head["spec"], cfg)

    group = cluster["workerGroupSpecs"][0]
    group["replicas"] = group["minReplicas"] = group["maxReplicas"] = training.workers
    # One Ray Train worker per pod: the pod's CPUs are the worker's CPUs.
    group["rayStartParams"] = {**group.get("rayStartParams", {}), "num-cpus": str(training.cpus_per_worker)}
    worker = group["template"]
    _label_template(worker, run.labels, "ray-worker")
    worker_container = worker["spec"]["containers"][0]
    worker_container["image"] = kube.ray_image
    worker_container["resources"] = _resources(training.cpus_per_worker, training.memory_per_worker, gpus=1 if training.use_gpu else 0)
    _place(worker["spec"], cfg)

    submitter = spec["submitterPodTemplate"]
    _label_template(submitter, run.labels, "submitter")
    pod = submitter["spec"]
    for container in pod["initContainers"] + pod["containers"]:
        container["image"] = kube.ray_image
    for volume in pod["volumes"]:
        if "configMap" in volume:
            volume["configMap"] = {"name": run.configmap_name, "items": volume_items}
    _place(pod, cfg)
    return job


def queue(job: dict[str, Any], queue_name: str) -> None:
    """Hand the RayJob to Kueue: created suspended, in the LocalQueue `queue_name`; Kueue unsuspends it on admission.

    Kueue v0.17 refuses a queued RayJob without shutdownAfterJobFinishes (and KubeRay 1.7 refuses to
    suspend one), and KubeRay 1.7 refuses shutdownAfterJobFinishes beside deletionRules: a queued run
    has KubeRay's older rule instead, the cluster deleted QUEUED_CLUSTER_TTL_SECONDS after the job
    ends, and no rule deletes the RayJob itself (README, "Queueing runs with Kueue").
    """
    job["metadata"]["labels"][KUEUE_QUEUE_LABEL] = queue_name
    spec = job["spec"]
    spec["suspend"] = True
    spec.pop("deletionStrategy", None)
    spec["shutdownAfterJobFinishes"] = True
    spec["ttlSecondsAfterFinished"] = QUEUED_CLUSTER_TTL_SECONDS


def expires_at(cfg: Config, now: float) -> str:
    """When every deadline of a run created at `now` and every deletion rule of its RayJob have passed (RFC 3339, UTC).

    The queue wait (--queue-timeout, with --queue-name) comes first; KubeRay then ends the job within --timeout
    (activeDeadlineSeconds, from the start); its rules delete the RayJob DeleteSelf's TTL after the end (with
    --keep-cluster, after the kept cluster); the grace leaves room for collect and cleanup. What is left after
    that is a leak: a job someone stopped (STOPPED, which no KubeRay 1.7 rule names), a queued run (which has no
    DeleteSelf rule), a ConfigMap a runner lost before the RayJob existed.
    """
    seconds = cfg.common.timeout + deletion_ttls(cfg.common)[1] + EXPIRY_GRACE_SECONDS
    if cfg.kube.queue_name:
        seconds += cfg.kube.queue_timeout
    when = dt.datetime.fromtimestamp(int(now + seconds), dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# On a namespace a run creates: which run, so that its cleanup deletes it once empty (kube.delete_namespace_if_empty).
CREATED_BY_RUN_ANNOTATION = "aks-ray.io/created-by-run"


def render_namespace(run: RunIdentity) -> dict[str, Any]:
    labels = {MANAGED_BY[0]: MANAGED_BY[1], **sandbox.namespace_labels()}
    metadata = {"name": run.namespace, "labels": labels, "annotations": {CREATED_BY_RUN_ANNOTATION: run.job_name}}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def render_sandbox(cfg: Config, run: RunIdentity) -> list[dict[str, Any]]:
    """The namespace's ResourceQuota and LimitRange, and the run's NetworkPolicy (sandbox.py)."""
    namespace_owned = {MANAGED_BY[0]: MANAGED_BY[1]}
    quota = sandbox.render_quota(cfg, run.namespace, namespace_owned)
    policy = sandbox.render_network_policy(
        cfg, run.job_name, run.namespace, {**run.labels, COMPONENT_LABEL: "sandbox"}, (RUN_LABEL, run.job_name)
    )
    return [obj for obj in (quota, sandbox.render_limit_range(run.namespace, namespace_owned), policy) if obj]


def launcher_files(cfg: Config) -> list[tuple[str, bytes]]:
    """The launcher and the driver's command (one JSON list), beside the training code."""
    taken = [name for name in (LAUNCHER_FILE, ARGV_FILE) if (cfg.training.training_dir / name).exists()]
    if taken:
        raise UserError(
            f"--training-dir {cfg.training.training_dir} holds {', '.join(taken)}, a name aks-ray uses for its launcher.",
            "rename that file.",
        )
    argv = jobspec.entrypoint_argv(cfg, jobspec.HEAD_ARTIFACTS_DIR)
    return [(LAUNCHER_FILE, LAUNCHER_SOURCE.read_bytes()), (ARGV_FILE, (json.dumps(argv, indent=1) + "\n").encode("utf-8"))]


def find(objects: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(obj for obj in objects if obj["kind"] == kind)


def render_run(cfg: Config, run: RunIdentity, now: float | None = None) -> list[dict[str, Any]]:
    """Every object the run creates, in creation order. Raises UserError on bad input.

    Namespace, ResourceQuota (unless --namespace-quota is empty), LimitRange,
    NetworkPolicy, ConfigMap, RayJob: the sandbox exists before any pod. The run's
    own three (NetworkPolicy, ConfigMap, RayJob) carry its expiry (expires_at).
    """
    if cfg.training.data_dir is not None:
        raise UserError(
            f"--data-dir {cfg.training.data_dir} is a folder on this machine, which the Ray pods cannot see.",
            "leave --data-dir empty on the kubeconfig and aks targets: the job "
            "downloads MNIST from --mnist-mirror (or trains on the bundled sample).",
        )
    configmap, items = render_configmap(cfg, run, training_files(cfg.training.training_dir) + launcher_files(cfg))
    objects = [render_namespace(run), *render_sandbox(cfg, run), configmap, render_rayjob(cfg, run, items)]
    expiry = expires_at(cfg, time.time() if now is None else now)
    for obj in objects:
        if (obj["metadata"].get("labels") or {}).get(RUN_LABEL) == run.job_name:
            obj["metadata"].setdefault("annotations", {})[EXPIRES_AT_ANNOTATION] = expiry
    return objects


def to_yaml(objects: Iterable[dict[str, Any]]) -> str:
    """Multi-document YAML, as `kubectl create -f -` (or `kubectl apply --server-side -f -`) reads it.

    Client-side `kubectl apply` would refuse the ConfigMap: it copies the whole
    object into an annotation, which may hold 256 KiB at most.
    """
    # libyaml's dumper when PyYAML has it: the operator's CRDs are tens of thousands of lines.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return "".join("---\n" + yaml.dump(obj, Dumper=dumper, sort_keys=False, width=120) for obj in objects)
