"""Rendering of the run's objects: names, labels, placement, resources, the training ConfigMap, --dry-run."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import sys

import pytest
import yaml

from aks_ray import cli, config, jobspec, rayjob, versions
from aks_ray.errors import ConfigError, UserError


def make_cfg(tmp_path, **env):
    environ = {"AKS_RAY_OUTPUT_DIR": str(tmp_path / "out"), "AKS_RAY_TARGET": "kubeconfig", **env}
    return config.load({}, environ)


def render(cfg, name="aks-ray-42-abc123"):
    run = rayjob.identity(cfg, name)
    return run, rayjob.render_run(cfg, run)


def job_of(cfg):
    return rayjob.find(render(cfg)[1], "RayJob")


def pod_specs(job):
    cluster = job["spec"]["rayClusterSpec"]
    return {
        "head": cluster["headGroupSpec"]["template"],
        "worker": cluster["workerGroupSpecs"][0]["template"],
        "submitter": job["spec"]["submitterPodTemplate"],
    }


def test_objects_in_creation_order(tmp_path):
    _, objects = render(make_cfg(tmp_path))
    assert [o["kind"] for o in objects] == ["Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy", "ConfigMap", "RayJob"]
    _, objects = render(make_cfg(tmp_path, AKS_RAY_NAMESPACE_QUOTA="none"))
    assert [o["kind"] for o in objects] == ["Namespace", "LimitRange", "NetworkPolicy", "ConfigMap", "RayJob"], "no quota asked for"


def test_job_names_are_unique_and_short_enough_for_kuberay(tmp_path):
    cfg = make_cfg(tmp_path, GITHUB_RUN_ID="123456789012345")
    names = {rayjob.new_job_name(cfg) for _ in range(50)}
    assert len(names) == 50
    for name in names:
        assert name.startswith("aks-ray-9012345-") or name.startswith("aks-ray-")
        # KubeRay appends "-xxxxx" for the RayCluster, then "-head-svc" or "-train-worker-xxxxx".
        assert len(f"{name}-xxxxx-train-worker-xxxxx") <= 63
        config.parse_dns_label(name)
    assert rayjob.new_job_name(make_cfg(tmp_path, AKS_RAY_JOB_NAME="fixed")) == "fixed"


def test_labels_carry_the_github_context(tmp_path):
    cfg = make_cfg(tmp_path, GITHUB_RUN_ID="987", GITHUB_RUN_ATTEMPT="2", GITHUB_REF="refs/pull/31/merge", GITHUB_SHA="a" * 40)
    run, objects = render(cfg)
    expected = {
        "app.kubernetes.io/managed-by": "aks-ray",
        "aks-ray.io/run": run.job_name,
        "aks-ray.io/github-run-id": "987",
        "aks-ray.io/github-run-attempt": "2",
        "aks-ray.io/pull-request": "31",
        "aks-ray.io/commit": "a" * 40,
    }
    configmap, job, policy = (rayjob.find(objects, kind) for kind in ("ConfigMap", "RayJob", "NetworkPolicy"))
    for obj in (configmap, job, policy, *pod_specs(job).values()):
        labels = obj["metadata"]["labels"]
        assert {k: labels[k] for k in expected} == expected
    assert run.selector == f"app.kubernetes.io/managed-by=aks-ray,aks-ray.io/run={run.job_name}"


def test_no_pull_request_label_outside_a_pull_request(tmp_path):
    _, objects = render(make_cfg(tmp_path, GITHUB_REF="refs/heads/main"))
    assert "aks-ray.io/pull-request" not in rayjob.find(objects, "RayJob")["metadata"]["labels"]


@pytest.mark.parametrize(
    ("env", "selector", "tolerations"),
    [
        ({}, None, None),
        (
            {"AKS_RAY_TARGET": "aks", "AKS_RAY_INFRA_MODE": "skip"},
            {"aks-ray.io/pool": "ray"},
            [{"key": "aks-ray.io/pool", "operator": "Equal", "value": "ray", "effect": "NoSchedule"}],
        ),
        (
            {
                "AKS_RAY_TARGET": "aks",
                "AKS_RAY_INFRA_MODE": "skip",
                "AKS_RAY_NODE_SELECTOR": "pool=big",
                "AKS_RAY_TOLERATIONS": "gpu=yes:NoExecute",
            },
            {"pool": "big"},
            [{"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoExecute"}],
        ),
        ({"AKS_RAY_NODE_SELECTOR": "kubernetes.io/os=linux"}, {"kubernetes.io/os": "linux"}, None),
    ],
    ids=["kubeconfig-anywhere", "aks-ray-pool", "aks-explicit-wins", "kubeconfig-selector"],
)
def test_node_placement(tmp_path, env, selector, tolerations):
    _, objects = render(make_cfg(tmp_path, **env))
    for role, template in pod_specs(rayjob.find(objects, "RayJob")).items():
        assert template["spec"].get("nodeSelector") == selector, role
        assert template["spec"].get("tolerations") == tolerations, role


def test_resources_follow_the_options(tmp_path):
    cfg = make_cfg(
        tmp_path,
        AKS_RAY_WORKERS="3",
        AKS_RAY_CPUS_PER_WORKER="2",
        AKS_RAY_MEMORY_PER_WORKER="4Gi",
        AKS_RAY_HEAD_CPUS="2",
        AKS_RAY_HEAD_MEMORY="6Gi",
    )
    job = job_of(cfg)
    group = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (3, 3, 3)
    assert group["rayStartParams"]["num-cpus"] == "2"
    worker = group["template"]["spec"]["containers"][0]
    assert worker["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]
    assert head["template"]["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "2", "memory": "6Gi"}
    assert head["rayStartParams"]["num-cpus"] == "0", "training workers never land on the head"


@pytest.mark.parametrize("quantity", ["500m", "0.5"])
def test_the_head_may_ask_for_part_of_a_cpu(tmp_path, quantity):
    # On a small node (a 2-core test cluster) the head, which only runs the
    # driver, leaves the whole CPUs to the workers.
    job = job_of(make_cfg(tmp_path, AKS_RAY_HEAD_CPUS=quantity))
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["resources"]["requests"]["cpu"] == head["resources"]["limits"]["cpu"] == quantity


def test_gpu_workers_ask_for_a_gpu_and_the_cuda_torch(tmp_path):
    job = job_of(make_cfg(tmp_path, AKS_RAY_USE_GPU="true"))
    worker = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    assert env["pip"] == {"packages": [f"torch=={versions.TORCH_VERSION}"]}, "PyPI's default wheel is the CUDA build"


def test_image_pinned_everywhere(tmp_path):
    job = job_of(make_cfg(tmp_path, AKS_RAY_RAY_IMAGE="myregistry.azurecr.io/ray:2.60.0-torch"))
    images = set()
    for template in pod_specs(job).values():
        for container in template["spec"].get("initContainers", []) + template["spec"]["containers"]:
            images.add(container["image"])
    assert images == {"myregistry.azurecr.io/ray:2.60.0-torch"}
    assert versions.RAY_IMAGE.startswith(f"rayproject/ray:{versions.RAY_VERSION}-py311")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({}, versions.RAY_VERSION, id="default-image"),
        pytest.param({"AKS_RAY_RAY_IMAGE": "rayproject/ray:2.55.1-py311-cpu"}, "2.55.1", id="older-image-tag"),
        pytest.param({"AKS_RAY_RAY_IMAGE": "myregistry.azurecr.io/ray:2.61.0"}, "2.61.0", id="plain-version-tag"),
        pytest.param(
            {"AKS_RAY_RAY_IMAGE": "myregistry.azurecr.io/train:v7", "AKS_RAY_RAY_VERSION": "2.58.0"}, "2.58.0", id="tag-silent-input-says"
        ),
        pytest.param({"AKS_RAY_RAY_IMAGE": "rayproject/ray:2.55.1-py311", "AKS_RAY_RAY_VERSION": "2.56.0"}, "2.56.0", id="input-beats-tag"),
    ],
)
def test_ray_version_is_the_images(tmp_path, env, expected):
    """rayVersion from the image, so KubeRay's own version checks (token authentication) judge the real Ray."""
    job = job_of(make_cfg(tmp_path, **env))
    assert job["spec"]["rayClusterSpec"]["rayVersion"] == expected


@pytest.mark.parametrize(
    ("env", "named"),
    [
        pytest.param({"AKS_RAY_RAY_IMAGE": "myregistry.azurecr.io/train:v7"}, "--ray-version", id="tag-says-nothing"),
        pytest.param({"AKS_RAY_RAY_IMAGE": "rayproject/ray:2.51.0-py311"}, "--ray-image", id="ray-without-token-auth"),
        pytest.param({"AKS_RAY_RAY_IMAGE": "rayproject/ray:nightly", "AKS_RAY_RAY_VERSION": "2.50.2"}, "--ray-image", id="input-too-old"),
    ],
)
def test_ray_version_problems_are_bad_input(tmp_path, env, named):
    with pytest.raises(ConfigError) as info:
        make_cfg(tmp_path, **env)
    assert any(problem.startswith(named) for problem in info.value.problems), info.value.problems


def test_a_torch_index_is_added_to_rays_pip_defaults(tmp_path):
    index = "https://wheels.example.org/cpu"
    env = yaml.safe_load(job_of(make_cfg(tmp_path, AKS_RAY_TORCH_INDEX_URL=index))["spec"]["runtimeEnvYAML"])
    # Ray's defaults kept (the list replaces them), the index added.
    assert env["pip"]["pip_install_options"] == ["--disable-pip-version-check", "--no-cache-dir", "--extra-index-url", index]


@pytest.mark.parametrize(
    ("value", "why"),
    [("http://wheels.example.org/cpu", "https"), ("https://user:secret@wheels.example.org/cpu", "credentials")],
)
def test_a_torch_index_must_be_https_without_credentials(tmp_path, value, why):
    with pytest.raises(ConfigError) as info:
        make_cfg(tmp_path, AKS_RAY_TORCH_INDEX_URL=value)
    problems = " ".join(info.value.problems)
    assert "(--torch-index-url)" in problems and why in problems and "secret" not in problems


def test_entrypoint_runtime_env_and_deadlines(tmp_path):
    cfg = make_cfg(tmp_path, AKS_RAY_TIMEOUT="10m", AKS_RAY_EPOCHS="1", AKS_RAY_CPUS_PER_WORKER="2")
    job = job_of(cfg)
    spec = job["spec"]
    assert spec["entrypoint"] == rayjob.KUBE_ENTRYPOINT
    argv = json.loads(rebuilt_training_dir(render(cfg)[1])[rayjob.ARGV_FILE])
    assert argv == jobspec.entrypoint_argv(cfg, jobspec.HEAD_ARTIFACTS_DIR)
    assert argv[argv.index("--epochs") + 1] == "1" and "--data-dir" not in argv
    env = yaml.safe_load(spec["runtimeEnvYAML"])
    # A plain pin: an image that has this torch needs no download; no index but PyPI unless one is given.
    assert env["pip"] == {"packages": [f"torch=={versions.TORCH_VERSION}"]}
    assert env["env_vars"]["OMP_NUM_THREADS"] == "2"
    # The working_dir is where the submitter pod has the training directory.
    mounts = spec["submitterPodTemplate"]["spec"]["containers"][0]["volumeMounts"]
    assert env["working_dir"] in [m["mountPath"] for m in mounts]
    assert spec["activeDeadlineSeconds"] == 600
    assert spec["preRunningDeadlineSeconds"] == 300, "by default half of a short --timeout, so the two deadlines differ"
    assert (spec["backoffLimit"], spec["submitterConfig"]["backoffLimit"]) == (0, 1)


@pytest.mark.parametrize(
    ("image", "choice", "installs"),
    [
        ("rayproject/ray:2.60.0-py311-cpu", "auto", True),  # the default image has no torch
        (f"localhost/aks-ray/ray:2.60.0-py311-torch{versions.TORCH_VERSION}", "auto", False),
        (f"myacr.azurecr.io/ray:2.60.0-torch{versions.TORCH_VERSION}@sha256:{'a' * 64}", "auto", False),
        ("myacr.azurecr.io/ray:2.60.0-torch2.1.0", "auto", True),  # another torch: the pin is installed
        (f"registry:5000/torch{versions.TORCH_VERSION}/ray:2.60.0", "auto", True),  # the path says nothing; the tag does
        (f"localhost/aks-ray/ray:2.60.0-py311-torch{versions.TORCH_VERSION}", "always", True),
        ("rayproject/ray:2.60.0-py311-cpu", "never", False),
    ],
)
def test_torch_is_installed_only_where_the_image_lacks_it(tmp_path, image, choice, installs):
    env = yaml.safe_load(job_of(make_cfg(tmp_path, AKS_RAY_RAY_IMAGE=image, AKS_RAY_INSTALL_TORCH=choice))["spec"]["runtimeEnvYAML"])
    assert ("pip" in env) is installs
    assert env["working_dir"] == rayjob.SUBMITTER_TRAINING_DIR and env["env_vars"]["PYTHONUNBUFFERED"] == "1"


@pytest.mark.parametrize(
    ("env", "active", "pre_running"),
    [
        pytest.param({}, 3600, 600, id="defaults"),
        pytest.param({"AKS_RAY_TIMEOUT": "2h"}, 7200, 600, id="long-timeout-keeps-10m"),
        pytest.param({"AKS_RAY_TIMEOUT": "15m"}, 900, 450, id="15m-timeout-half"),
        pytest.param({"AKS_RAY_TIMEOUT": "15m", "AKS_RAY_START_TIMEOUT": "5m"}, 900, 300, id="explicit"),
        pytest.param({"AKS_RAY_TIMEOUT": "20m", "AKS_RAY_START_TIMEOUT": "900"}, 1200, 900, id="explicit-seconds"),
    ],
)
def test_pre_running_deadline_is_its_own_and_shorter(tmp_path, env, active, pre_running):
    spec = job_of(make_cfg(tmp_path, **env))["spec"]
    assert (spec["activeDeadlineSeconds"], spec["preRunningDeadlineSeconds"]) == (active, pre_running)
    assert spec["preRunningDeadlineSeconds"] < spec["activeDeadlineSeconds"]


@pytest.mark.parametrize("start", ["15m", "20m", "900"])
def test_start_timeout_not_below_timeout_is_bad_input(tmp_path, start):
    with pytest.raises(ConfigError) as info:
        make_cfg(tmp_path, AKS_RAY_TIMEOUT="15m", AKS_RAY_START_TIMEOUT=start)
    assert any(problem.startswith("--start-timeout") for problem in info.value.problems)


def test_token_authentication_stays_on(tmp_path):
    job = job_of(make_cfg(tmp_path))
    assert job["spec"]["rayClusterSpec"]["authOptions"] == {"mode": "token"}


def test_deletion_waits_for_collection_unless_kept(tmp_path):
    job = job_of(make_cfg(tmp_path))
    rules = job["spec"]["deletionStrategy"]["deletionRules"]
    assert {r["policy"] for r in rules} == {"DeleteCluster", "DeleteSelf"}
    assert all(r["condition"]["ttlSeconds"] >= 600 for r in rules), "the head must outlive collection"
    # Every terminal condition KubeRay 1.7 lets a rule name has both: first the cluster, later the RayJob itself.
    conditions = [{"jobStatus": "SUCCEEDED"}, {"jobStatus": "FAILED"}, {"jobDeploymentStatus": "Failed"}]
    for condition in conditions:
        ttl = {
            r["policy"]: r["condition"]["ttlSeconds"]
            for r in rules
            if {k: v for k, v in r["condition"].items() if k != "ttlSeconds"} == condition
        }
        assert ttl["DeleteSelf"] > ttl["DeleteCluster"], condition
    # KubeRay's own validation of deletionRules (ValidateRayJobSpec, beyond the CRD's CEL rules):
    # not with shutdownAfterJobFinishes, one rule per (condition, policy), TTLs Workers <= Cluster <= Self.
    assert "shutdownAfterJobFinishes" not in job["spec"]
    keys = [(tuple(sorted((k, v) for k, v in r["condition"].items() if k != "ttlSeconds")), r["policy"]) for r in rules]
    assert len(keys) == len(set(keys))
    order = ["DeleteWorkers", "DeleteCluster", "DeleteSelf"]
    for condition in {k for k, _ in keys}:
        ttls = [r["condition"]["ttlSeconds"] for p in order for r in rules if r["policy"] == p and (condition, p) in keys]
        assert ttls == sorted(ttls)
    kept = job_of(make_cfg(tmp_path, AKS_RAY_KEEP_CLUSTER="true", AKS_RAY_KEEP_CLUSTER_TTL="90m"))
    kept_rules = kept["spec"]["deletionStrategy"]["deletionRules"]
    assert {r["condition"]["ttlSeconds"] for r in kept_rules if r["policy"] == "DeleteCluster"} == {5400}, "kept, for a bounded time"
    assert {r["condition"]["ttlSeconds"] for r in kept_rules if r["policy"] == "DeleteSelf"} == {5400 + 1800}
    assert [r["policy"] for r in kept_rules] == [r["policy"] for r in rules]
    default_kept = job_of(make_cfg(tmp_path, AKS_RAY_KEEP_CLUSTER="true"))["spec"]["deletionStrategy"]["deletionRules"]
    assert {r["condition"]["ttlSeconds"] for r in default_kept if r["policy"] == "DeleteCluster"} == {4 * 3600}


@pytest.mark.parametrize(
    ("env", "cluster_ttl", "self_ttl"),
    [
        pytest.param({}, 1800, 3600, id="defaults"),
        pytest.param({"AKS_RAY_LOST_RUN_TTL": "20s"}, 10, 20, id="short"),
        pytest.param({"AKS_RAY_LOST_RUN_TTL": "25s"}, 12, 25, id="odd"),
        pytest.param(
            {"AKS_RAY_KEEP_CLUSTER": "true", "AKS_RAY_KEEP_CLUSTER_TTL": "2h", "AKS_RAY_LOST_RUN_TTL": "10m"}, 7200, 7500, id="kept"
        ),
    ],
)
def test_lost_run_ttl_sets_when_kuberay_deletes_what_cleanup_never_reached(tmp_path, env, cluster_ttl, self_ttl):
    rules = job_of(make_cfg(tmp_path, **env))["spec"]["deletionStrategy"]["deletionRules"]
    assert {r["condition"]["ttlSeconds"] for r in rules if r["policy"] == "DeleteCluster"} == {cluster_ttl}
    assert {r["condition"]["ttlSeconds"] for r in rules if r["policy"] == "DeleteSelf"} == {self_ttl}


def test_configmap_carries_every_training_file(tmp_path):
    cfg = make_cfg(tmp_path)
    _, objects = render(cfg)
    configmap, job = rayjob.find(objects, "ConfigMap"), rayjob.find(objects, "RayJob")
    volume = next(v for v in job["spec"]["submitterPodTemplate"]["spec"]["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    rebuilt = {}
    for item in volume["configMap"]["items"]:
        if item["key"] in configmap.get("data", {}):
            rebuilt[item["path"]] = configmap["data"][item["key"]].encode()
        else:
            rebuilt[item["path"]] = base64.b64decode(configmap["binaryData"][item["key"]])
    assert rebuilt == dict(rayjob.training_files(cfg.training.training_dir) + rayjob.launcher_files(cfg))
    assert "train_mnist.py" in rebuilt
    assert "train_mnist.py" in "".join(k for k in configmap.get("data", {})), "code stays readable"
    assert not any("__pycache__" in path or path.endswith(".pyc") for path in rebuilt)


def test_training_dir_too_big_is_bad_input_naming_the_way_out(tmp_path):
    training = tmp_path / "training"
    training.mkdir()
    (training / "train.py").write_text("print('hi')\n")
    (training / "weights.bin").write_bytes(b"\0" * (1024 * 1024))
    cfg = make_cfg(tmp_path, AKS_RAY_TRAINING_DIR=str(training), AKS_RAY_ENTRYPOINT="python train.py")
    with pytest.raises(UserError, match=r"weights\.bin") as excinfo:
        render(cfg)
    assert "--ray-image" in excinfo.value.fix
    assert excinfo.value.exit_code == 2


def test_configmap_keys_are_valid_and_distinct():
    keys = {rayjob.configmap_key(i, p) for i, p in enumerate(["a/b.py", "a.b.py", "data/x y.gz", "ü.py"])}
    assert len(keys) == 4
    assert all(config._LABEL_VALUE.match(k.replace(".", "-")) or k for k in keys)
    assert all(set(k) <= set("-._abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for k in keys)


def test_dry_run_prints_the_objects_and_touches_nothing(tmp_path, monkeypatch, capsys):
    # A kubeconfig that does not exist: any attempt to reach a cluster would fail the run.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.setenv("AKS_RAY_OUTPUT_DIR", str(tmp_path / "out"))
    not_a_chart = tmp_path / "not-a-chart"  # exists, but helm (if present) cannot render it: keeps this test fast
    not_a_chart.mkdir()
    code = cli.main(["run", "--target", "kubeconfig", "--dry-run", "--workers", "1", "--epochs", "1", "--kuberay-chart", str(not_a_chart)])
    assert code == 0
    out = capsys.readouterr().out
    documents = [d for d in yaml.safe_load_all(out) if d]
    assert [d["kind"] for d in documents] == ["Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy", "ConfigMap", "RayJob"]
    assert documents[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert "&id" not in out and "*id" not in out, "no YAML aliases in what people read"
    assert documents[-1]["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] == 1
    assert "not rendered" in out.splitlines()[1], "says why the operator's objects are missing"
    assert not (tmp_path / "out").exists(), "a dry run writes nothing"


def test_dry_run_with_a_missing_chart_is_bad_input(tmp_path, monkeypatch):
    monkeypatch.setenv("AKS_RAY_OUTPUT_DIR", str(tmp_path / "out"))
    assert cli.main(["run", "--target", "kubeconfig", "--dry-run", "--kuberay-chart", str(tmp_path / "nope")]) == 2


def test_a_local_data_dir_is_refused_on_a_cluster(tmp_path):
    data = tmp_path / "mnist"
    data.mkdir()
    with pytest.raises(UserError, match="--data-dir") as excinfo:
        render(make_cfg(tmp_path, AKS_RAY_DATA_DIR=str(data)))
    assert "--mnist-mirror" in excinfo.value.fix


def rebuilt_training_dir(objects) -> dict[str, str]:
    """The submitter's training folder as its ConfigMap volume lays it out (text files only)."""
    configmap, job = rayjob.find(objects, "ConfigMap"), rayjob.find(objects, "RayJob")
    volume = next(v for v in job["spec"]["submitterPodTemplate"]["spec"]["volumes"] if "configMap" in v)
    return {
        item["path"]: configmap["data"][item["key"]] for item in volume["configMap"]["items"] if item["key"] in configmap.get("data", {})
    }


# A stand-in for the Ray image's `ray` CLI: `ray job status` finds no job, `ray job submit ... -- ARGS`
# joins ARGS into one entrypoint string as the given Ray release does (shlex.join since Ray 2.60,
# subprocess.list2cmdline before), and runs it with a shell in the working_dir, as Ray's job supervisor does
# (subprocess.Popen(entrypoint, shell=True)); `ray job logs` has nothing more to say.
FAKE_RAY = """#!{python}
import os, shlex, subprocess, sys
args = sys.argv[1:]
if args[:2] != ["job", "submit"]:
    sys.exit(1 if args[:2] == ["job", "status"] else 0)
entrypoint = args[args.index("--") + 1:]
command = subprocess.list2cmdline(entrypoint) if os.environ["JOIN"] == "list2cmdline" else shlex.join(entrypoint)
sys.exit(subprocess.run(command, shell=True, cwd=os.environ["WORKING_DIR"]).returncode)
"""
SHOW_ARGV = "import json, sys\nopen('argv.json', 'w').write(json.dumps(sys.argv[1:]))\n"
AWKWARD = "https://mirror.example/mnist/?token=a&b=$HOME;echo pwned `id` 'single' \"double\" two  spaces|x>y/"


@pytest.mark.parametrize("join", ["shlex.join", "list2cmdline"], ids=["ray-2.60", "older-ray"])
def test_the_entrypoint_reaches_the_driver_exactly_as_given(tmp_path, join):
    """Through KubeRay 1.7's submitter command (bash -c), `ray job submit` and the driver's shell: argv unchanged."""
    training = tmp_path / "training"
    training.mkdir()
    (training / "show_argv.py").write_text(SHOW_ARGV)
    cfg = make_cfg(tmp_path, AKS_RAY_TRAINING_DIR=str(training), AKS_RAY_ENTRYPOINT="python show_argv.py --tag a")
    # Values no input may carry today (config refuses shell characters), to show the path itself is safe.
    cfg = dataclasses.replace(
        cfg, training=dataclasses.replace(cfg.training, mnist_mirror=AWKWARD, entrypoint="python show_argv.py --tag 'a b;c'")
    )
    job = rayjob.find(render(cfg)[1], "RayJob")
    working_dir = tmp_path / "working-dir"
    working_dir.mkdir()
    for path, text in rebuilt_training_dir(render(cfg)[1]).items():
        (working_dir / path).write_text(text)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ray").write_text(FAKE_RAY.format(python=sys.executable))
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "ray").chmod(0o755)
    # KubeRay 1.7's K8sJobMode command (common/job.go BuildJobSubmitCommand), joined with spaces, run by `/bin/bash -c --`.
    address = "http://aks-ray-42-abc123-head-svc.aks-ray.svc.cluster.local:8265"
    runtime_env = json.dumps(yaml.safe_load(job["spec"]["runtimeEnvYAML"]))
    job_id = "aks-ray-42-abc123-tp9wx"
    parts = [
        ["if", "!", "ray", "job", "status", "--address", address, job_id, ">/dev/null", "2>&1", ";", "then"],
        ["ray", "job", "submit", "--address", address, "--no-wait", "--runtime-env-json", json.dumps(runtime_env)],
        ["--submission-id", job_id, "--", job["spec"]["entrypoint"].strip(), ";", "fi", ";"],
        ["ray", "job", "logs", "--address", address, "--follow", job_id],
    ]
    command = " ".join(word for part in parts for word in part)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "JOIN": join, "WORKING_DIR": str(working_dir), "HOME": str(tmp_path)}
    subprocess.run(["/bin/bash", "-c", "--", command], env=env, check=True, timeout=60)
    received = json.loads((working_dir / "argv.json").read_text())
    expected = jobspec.entrypoint_argv(cfg, jobspec.HEAD_ARTIFACTS_DIR)[2:]
    assert received == expected
    assert received[received.index("--mnist-mirror") + 1] == AWKWARD
    assert received[:2] == ["--tag", "a b;c"]
