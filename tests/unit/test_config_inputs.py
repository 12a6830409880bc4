"""Bad action inputs stop `aks-ray validate` with exit 2, naming the input, before anything exists.

The composite action hands each input to the CLI as AKS_RAY_<INPUT>; these
cases set exactly those variables, as the action's validate step does.
"""

from __future__ import annotations

import json

import pytest

from aks_ray import cli
from aks_ray.errors import EXIT_USER

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"

# (id, environment as the action sets it, the input the message must name)
BAD_INPUTS = [
    # wrong enum values
    ("target-unknown", {"AKS_RAY_TARGET": "gke"}, "--target"),
    ("infra-mode-unknown", {"AKS_RAY_INFRA_MODE": "create"}, "--infra-mode"),
    ("destroy-policy-unknown", {"AKS_RAY_DESTROY_POLICY": "sometimes"}, "--destroy-policy"),
    ("log-level-unknown", {"AKS_RAY_LOG_LEVEL": "loud"}, "--log-level"),
    ("use-gpu-not-boolean", {"AKS_RAY_USE_GPU": "maybe"}, "--use-gpu"),
    # bad numbers, and 0 where 0 makes no sense
    ("epochs-zero", {"AKS_RAY_EPOCHS": "0"}, "--epochs"),
    ("epochs-word", {"AKS_RAY_EPOCHS": "three"}, "--epochs"),
    ("workers-zero", {"AKS_RAY_WORKERS": "0"}, "--workers"),
    ("workers-too-many", {"AKS_RAY_WORKERS": "257"}, "--workers"),
    ("cpus-per-worker-fraction", {"AKS_RAY_CPUS_PER_WORKER": "0.5"}, "--cpus-per-worker"),
    ("batch-size-negative", {"AKS_RAY_BATCH_SIZE": "-1"}, "--batch-size"),
    ("learning-rate-zero", {"AKS_RAY_LEARNING_RATE": "0"}, "--learning-rate"),
    ("timeout-zero", {"AKS_RAY_TIMEOUT": "0"}, "--timeout"),
    ("timeout-days", {"AKS_RAY_TIMEOUT": "2d"}, "--timeout"),
    ("system-node-count-zero", {"AKS_RAY_SYSTEM_NODE_COUNT": "0"}, "--system-node-count"),
    ("ray-node-count-zero", {"AKS_RAY_RAY_NODE_COUNT": "0"}, "--ray-node-count"),
    ("ray-max-nodes-zero", {"AKS_RAY_RAY_MIN_NODES": "0", "AKS_RAY_RAY_MAX_NODES": "0"}, "--ray-max-nodes"),
    ("ray-min-above-max", {"AKS_RAY_RAY_MIN_NODES": "3", "AKS_RAY_RAY_MAX_NODES": "2"}, "--ray-min-nodes"),
    ("ray-min-without-max", {"AKS_RAY_RAY_MIN_NODES": "0"}, "--ray-max-nodes"),
    ("head-cpus-zero", {"AKS_RAY_HEAD_CPUS": "0"}, "--head-cpus"),
    ("head-cpus-below-100m", {"AKS_RAY_HEAD_CPUS": "50m"}, "--head-cpus"),
    ("head-cpus-not-a-quantity", {"AKS_RAY_HEAD_CPUS": "1 cpu"}, "--head-cpus"),
    ("expires-in-hours-zero", {"AKS_RAY_EXPIRES_IN_HOURS": "0"}, "--expires-in-hours"),
    ("memory-per-worker-unit", {"AKS_RAY_MEMORY_PER_WORKER": "2GB"}, "--memory-per-worker"),
    # names Kubernetes or Azure would refuse
    ("namespace-uppercase", {"AKS_RAY_NAMESPACE": "Aks-Ray"}, "--namespace"),
    ("namespace-too-long", {"AKS_RAY_NAMESPACE": "a" * 64}, "--namespace"),
    ("job-name-underscore", {"AKS_RAY_JOB_NAME": "my_job"}, "--job-name"),
    ("operator-namespace-dot-end", {"AKS_RAY_OPERATOR_NAMESPACE": "kuberay."}, "--operator-namespace"),
    ("name-prefix-digit-first", {"AKS_RAY_NAME_PREFIX": "1ray"}, "--name-prefix"),
    ("name-prefix-too-long", {"AKS_RAY_NAME_PREFIX": "abcdefghijklm"}, "--name-prefix"),
    ("resource-group-dot-last", {"AKS_RAY_RESOURCE_GROUP": "rg."}, "--resource-group"),
    ("cluster-name-one-char", {"AKS_RAY_CLUSTER_NAME": "a"}, "--cluster-name"),
    # names the CLI once let through and Terraform's own validation refused at plan time
    ("cluster-name-dot", {"AKS_RAY_CLUSTER_NAME": "ray.aks"}, "--cluster-name"),
    ("cluster-name-underscore-last", {"AKS_RAY_CLUSTER_NAME": "ray_"}, "--cluster-name"),
    # the azurerm state backend's settings
    ("tf-backend-config-unknown-key", {"AKS_RAY_TF_BACKEND_CONFIG": "storage_account=x,container_name=c,key=k"}, "--tf-backend-config"),
    (
        "tf-backend-config-secret",
        {"AKS_RAY_TF_BACKEND_CONFIG": "storage_account_name=s,container_name=c,key=k,access_key=abc"},
        "--tf-backend-config",
    ),
    ("tf-backend-config-no-key", {"AKS_RAY_TF_BACKEND_CONFIG": "storage_account_name=s,container_name=c"}, "--tf-backend-config"),
    ("tf-backend-config-no-value", {"AKS_RAY_TF_BACKEND_CONFIG": "storage_account_name=,container_name=c,key=k"}, "--tf-backend-config"),
    ("lock-timeout-zero", {"AKS_RAY_LOCK_TIMEOUT": "0"}, "--lock-timeout"),
    # KubeRay 1.7 refuses these RayJob names (ValidationFailed): a DNS-1035 label of at most 47 characters.
    ("job-name-48-characters", {"AKS_RAY_JOB_NAME": "a" * 48}, "--job-name"),
    ("job-name-63-characters", {"AKS_RAY_JOB_NAME": "pr-" + "1" * 60}, "--job-name"),
    ("job-name-starts-with-digit", {"AKS_RAY_JOB_NAME": "12-train"}, "--job-name"),
    ("job-name-ends-with-dash", {"AKS_RAY_JOB_NAME": "train-"}, "--job-name"),
    ("job-name-upper-case", {"AKS_RAY_JOB_NAME": "Train"}, "--job-name"),
    ("job-name-dot", {"AKS_RAY_JOB_NAME": "train.v2"}, "--job-name"),
    ("start-timeout-not-below-timeout", {"AKS_RAY_TIMEOUT": "15m", "AKS_RAY_START_TIMEOUT": "15m"}, "--start-timeout"),
    ("start-timeout-word", {"AKS_RAY_START_TIMEOUT": "soon"}, "--start-timeout"),
    ("ray-version-range", {"AKS_RAY_RAY_VERSION": "2.60"}, "--ray-version"),
    ("location-too-short", {"AKS_RAY_LOCATION": "us"}, "--location"),
    ("vm-size-no-prefix", {"AKS_RAY_RAY_VM_SIZE": "D4s_v5"}, "--ray-vm-size"),
    ("kubernetes-version-word", {"AKS_RAY_KUBERNETES_VERSION": "latest"}, "--kubernetes-version"),
    ("ray-image-latest", {"AKS_RAY_RAY_IMAGE": "rayproject/ray:latest"}, "--ray-image"),
    ("ray-image-untagged", {"AKS_RAY_RAY_IMAGE": "rayproject/ray"}, "--ray-image"),
    ("ray-image-digest-without-tag", {"AKS_RAY_RAY_IMAGE": "rayproject/ray@sha256:" + "a" * 64}, "--ray-image"),
    ("ray-image-short-digest", {"AKS_RAY_RAY_IMAGE": "rayproject/ray:2.60.0@sha256:abc"}, "--ray-image"),
    ("kuberay-chart-http", {"AKS_RAY_KUBERAY_CHART": "http://charts.example/kuberay/"}, "--kuberay-chart"),
    ("kuberay-chart-ftp", {"AKS_RAY_KUBERAY_CHART": "ftp://charts.example/kuberay/"}, "--kuberay-chart"),
    ("kuberay-version-latest", {"AKS_RAY_KUBERAY_VERSION": "latest"}, "--kuberay-version"),
    ("kuberay-version-range", {"AKS_RAY_KUBERAY_VERSION": "1.7"}, "--kuberay-version"),
    ("egress-blocked-not-cidr", {"AKS_RAY_EGRESS_BLOCKED_CIDRS": "10.0.0.0/33"}, "--egress-blocked-cidrs"),
    ("namespace-quota-no-value", {"AKS_RAY_NAMESPACE_QUOTA": "pods"}, "--namespace-quota"),
    ("namespace-quota-bad-quantity", {"AKS_RAY_NAMESPACE_QUOTA": "requests.memory=lots"}, "--namespace-quota"),
    ("keep-cluster-ttl-too-long", {"AKS_RAY_KEEP_CLUSTER_TTL": "169h"}, "--keep-cluster-ttl"),
    ("keep-cluster-ttl-zero", {"AKS_RAY_KEEP_CLUSTER_TTL": "0"}, "--keep-cluster-ttl"),
    ("lost-run-ttl-too-long", {"AKS_RAY_LOST_RUN_TTL": "169h"}, "--lost-run-ttl"),
    ("lost-run-ttl-zero", {"AKS_RAY_LOST_RUN_TTL": "0"}, "--lost-run-ttl"),
    ("subscription-not-guid", {"AKS_RAY_AZURE_SUBSCRIPTION_ID": "my-subscription"}, "--azure-subscription-id"),
    ("client-id-not-guid", {"AKS_RAY_AZURE_CLIENT_ID": "abc"}, "--azure-client-id"),
    ("node-selector-no-value", {"AKS_RAY_NODE_SELECTOR": "pool"}, "--node-selector"),
    ("tolerations-bad-effect", {"AKS_RAY_TOLERATIONS": "pool=ray:Sometimes"}, "--tolerations"),
    ("tags-no-equals", {"AKS_RAY_TAGS": "team"}, "--tags"),
    ("mnist-mirror-ftp", {"AKS_RAY_MNIST_MIRROR": "ftp://mirror.example/mnist/"}, "--mnist-mirror"),
    # shell metacharacters, in any input
    ("entrypoint-semicolon", {"AKS_RAY_ENTRYPOINT": "python train_mnist.py; curl evil"}, "--entrypoint"),
    ("job-name-command-substitution", {"AKS_RAY_JOB_NAME": "$(id)"}, "--job-name"),
    ("training-dir-backtick", {"AKS_RAY_TRAINING_DIR": "`id`"}, "--training-dir"),
    ("kube-context-ampersand", {"AKS_RAY_KUBE_CONTEXT": "kind&id"}, "--kube-context"),
    ("data-dir-redirect", {"AKS_RAY_DATA_DIR": "data>out"}, "--data-dir"),
    ("tags-pipe", {"AKS_RAY_TAGS": "team=ml|id"}, "--tags"),
    ("location-newline", {"AKS_RAY_LOCATION": "eastus\nid"}, "--location"),
    ("kuberay-chart-quote", {"AKS_RAY_KUBERAY_CHART": "https://charts.example/'x'"}, "--kuberay-chart"),
    # what does not exist
    ("training-dir-missing", {"AKS_RAY_TRAINING_DIR": "does/not/exist"}, "--training-dir"),
    ("entrypoint-script-missing", {"AKS_RAY_ENTRYPOINT": "python nope.py"}, "--entrypoint"),
    ("data-dir-missing", {"AKS_RAY_DATA_DIR": "no-such-data"}, "--data-dir"),
    # what the aks target cannot do without
    ("aks-without-subscription", {"AKS_RAY_TARGET": "aks"}, "--azure-subscription-id"),
    # a cluster that may be kept, with its state on a runner that goes away
    (
        "aks-never-destroy-local-state",
        {"AKS_RAY_TARGET": "aks", "AKS_RAY_AZURE_SUBSCRIPTION_ID": SUBSCRIPTION, "AKS_RAY_DESTROY_POLICY": "never"},
        "--destroy-policy",
    ),
    (
        "aks-on-success-local-state",
        {"AKS_RAY_TARGET": "aks", "AKS_RAY_AZURE_SUBSCRIPTION_ID": SUBSCRIPTION, "AKS_RAY_DESTROY_POLICY": "on-success"},
        "--destroy-policy",
    ),
    # a pull request's run that would create or change the infrastructure (issue 12: two identities)
    (
        "pull-request-applies-infra",
        {"AKS_RAY_TARGET": "aks", "AKS_RAY_AZURE_SUBSCRIPTION_ID": SUBSCRIPTION, "GITHUB_EVENT_NAME": "pull_request"},
        "--infra-mode",
    ),
    (
        "pull-request-target-applies-infra",
        {
            "AKS_RAY_TARGET": "aks",
            "AKS_RAY_AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
            "AKS_RAY_INFRA_MODE": "apply",
            "GITHUB_EVENT_NAME": "pull_request_target",
        },
        "--infra-mode",
    ),
    ("allow-pull-request-infra-not-boolean", {"AKS_RAY_ALLOW_PULL_REQUEST_INFRA": "sometimes"}, "--allow-pull-request-infra"),
]


@pytest.fixture
def action_env(monkeypatch, tmp_path):
    """An empty working directory and the output folder inside it, as on a fresh runner."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AKS_RAY_OUTPUT_DIR", str(tmp_path / "aks-ray-output"))
    return tmp_path


@pytest.mark.parametrize(("env", "named"), [pytest.param(env, named, id=case) for case, env, named in BAD_INPUTS])
def test_bad_input_exits_2_naming_it(action_env, monkeypatch, capsys, env, named):
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    assert cli.main(["validate"]) == EXIT_USER
    stderr = capsys.readouterr().err
    assert named in stderr
    assert "nothing was started or created" in stderr
    assert not (action_env / "aks-ray-output").exists()


@pytest.mark.parametrize(("env", "named"), [pytest.param(env, named, id=case) for case, env, named in BAD_INPUTS if len(env) == 1])
def test_message_names_the_variable_the_action_set(action_env, monkeypatch, capsys, env, named):
    """Values parsed one by one name the variable (the action's input) and the flag; cross-checks name the flag."""
    ((variable, value),) = env.items()
    monkeypatch.setenv(variable, value)
    cli.main(["validate"])
    stderr = capsys.readouterr().err
    assert variable in stderr or f"{named}:" in stderr


def test_every_bad_input_is_reported_at_once(action_env, monkeypatch, capsys):
    for variable, value in {"AKS_RAY_EPOCHS": "0", "AKS_RAY_TARGET": "gke", "AKS_RAY_JOB_NAME": "a;b"}.items():
        monkeypatch.setenv(variable, value)
    assert cli.main(["validate"]) == EXIT_USER
    stderr = capsys.readouterr().err
    for named in ("AKS_RAY_EPOCHS", "AKS_RAY_TARGET", "AKS_RAY_JOB_NAME"):
        assert named in stderr


def test_errors_are_annotations_under_actions(action_env, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("AKS_RAY_WORKERS", "0")
    assert cli.main(["validate"]) == EXIT_USER
    assert "::error title=aks-ray%3A invalid input::AKS_RAY_WORKERS (--workers)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({}, id="defaults"),
        pytest.param({"AKS_RAY_TARGET": "kubeconfig", "AKS_RAY_JOB_NAME": "pr-12", "AKS_RAY_NAMESPACE": "pr-12"}, id="kubeconfig"),
        pytest.param(
            {
                "AKS_RAY_TARGET": "aks",
                "AKS_RAY_AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
                "AKS_RAY_RAY_MIN_NODES": "0",
                "AKS_RAY_RAY_MAX_NODES": "3",
            },
            id="aks",
        ),
        pytest.param(
            {
                "AKS_RAY_TARGET": "aks",
                "AKS_RAY_AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
                "AKS_RAY_DESTROY_POLICY": "never",
                "AKS_RAY_TF_BACKEND_CONFIG": "resource_group_name=tfstate-rg,storage_account_name=yourtfstate,"
                "container_name=tfstate,key=aks-ray/pr.tfstate",
                "AKS_RAY_CLUSTER_NAME": "ray_aks-1",
                "AKS_RAY_LOCK_TIMEOUT": "30m",
            },
            id="aks-kept-cluster-remote-state",
        ),
        pytest.param(
            {
                "AKS_RAY_TARGET": "aks",
                "AKS_RAY_AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
                "AKS_RAY_DESTROY_POLICY": "never",
                "AKS_RAY_INFRA_MODE": "reuse",
            },
            id="aks-reuse-needs-no-state",
        ),
        pytest.param(
            {
                "AKS_RAY_TARGET": "aks",
                "AKS_RAY_AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
                "AKS_RAY_INFRA_MODE": "reuse",
                "AKS_RAY_DESTROY_POLICY": "never",
                "GITHUB_EVENT_NAME": "pull_request",
            },
            id="pull-request-reuses-the-cluster",
        ),
        pytest.param(
            {
                "AKS_RAY_TARGET": "aks",
                "AKS_RAY_AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
                "AKS_RAY_ALLOW_PULL_REQUEST_INFRA": "true",
                "GITHUB_EVENT_NAME": "pull_request",
            },
            id="pull-request-applies-with-the-explicit-opt-in",
        ),
        pytest.param(
            {"AKS_RAY_TARGET": "aks", "AKS_RAY_AZURE_SUBSCRIPTION_ID": SUBSCRIPTION, "GITHUB_EVENT_NAME": "push"},
            id="push-applies",
        ),
        pytest.param({"AKS_RAY_TARGET": "kubeconfig", "GITHUB_EVENT_NAME": "pull_request"}, id="pull-request-on-kubeconfig"),
        pytest.param({"AKS_RAY_EPOCHS": "", "AKS_RAY_WORKERS": " "}, id="empty-inputs-mean-defaults"),
        pytest.param({"AKS_RAY_TARGET": "kubeconfig", "AKS_RAY_JOB_NAME": "a" + "b" * 46}, id="job-name-47-characters"),
        pytest.param({"AKS_RAY_TARGET": "kubeconfig", "AKS_RAY_JOB_NAME": "x"}, id="job-name-one-letter"),
        pytest.param({"AKS_RAY_TIMEOUT": "2h", "AKS_RAY_START_TIMEOUT": "20m"}, id="start-timeout-within-timeout"),
        pytest.param(
            {
                "AKS_RAY_RAY_IMAGE": "myregistry.azurecr.io/ray:2.60.0-torch@sha256:" + "0" * 64,
                "AKS_RAY_KUBERAY_CHART": "oci://myregistry.azurecr.io/helm/kuberay-operator",
                "AKS_RAY_KUBERAY_VERSION": "1.7.0-rc.0",
                "AKS_RAY_EGRESS_BLOCKED_CIDRS": "169.254.0.0/16,fd00::/8",
                "AKS_RAY_NAMESPACE_QUOTA": "pods=10,requests.cpu=8,count/rayjobs.ray.io=2",
                "AKS_RAY_KEEP_CLUSTER_TTL": "168h",
            },
            id="sandbox-and-supply-chain-inputs",
        ),
    ],
)
def test_good_input_validates(action_env, monkeypatch, env):
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    assert cli.main(["validate"]) == 0


def test_a_symlink_out_of_the_training_folder_exits_2_naming_it(action_env, monkeypatch, capsys):
    training = action_env / "training"
    training.mkdir()
    (training / "train.py").write_text("print('hi')\n")
    (training / "creds.json").symlink_to("/etc/passwd")
    monkeypatch.setenv("AKS_RAY_TRAINING_DIR", str(training))
    monkeypatch.setenv("AKS_RAY_ENTRYPOINT", "python train.py")
    assert cli.main(["validate"]) == EXIT_USER
    stderr = capsys.readouterr().err
    assert "creds.json -> /etc/passwd" in stderr and "--training-dir" in stderr


@pytest.mark.parametrize("event", ["pull_request", "pull_request_target"])
def test_a_pull_request_that_would_apply_infra_is_refused_with_the_reason_and_the_fix(action_env, monkeypatch, capsys, event):
    """Through the action's own channel (AKS_RAY_INPUTS): the default infra-mode, apply, on a pull request's run."""
    monkeypatch.setenv("GITHUB_EVENT_NAME", event)
    monkeypatch.setenv("AKS_RAY_INPUTS", json.dumps({"target": "aks", "azure-subscription-id": SUBSCRIPTION, "infra-mode": ""}))
    assert cli.main(["validate"]) == EXIT_USER
    stderr = capsys.readouterr().err
    assert f"apply on a {event} run" in stderr and "create or change the Azure infrastructure" in stderr  # the reason
    assert "--infra-mode reuse with the pull-request identity" in stderr and "--allow-pull-request-infra true" in stderr  # the fixes
    assert not (action_env / "aks-ray-output").exists()


def test_the_opt_in_is_read_from_the_action_input(action_env, monkeypatch):
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    inputs = {"target": "aks", "azure-subscription-id": SUBSCRIPTION, "allow-pull-request-infra": "true"}
    monkeypatch.setenv("AKS_RAY_INPUTS", json.dumps(inputs))
    assert cli.main(["validate"]) == 0


@pytest.mark.parametrize("step", [["infra", "plan"], ["infra", "apply"], ["credentials"]])
def test_every_step_refuses_it_not_only_validate(action_env, monkeypatch, capsys, step):
    """A workflow that calls a step by itself (aks-ray infra apply) meets the same rule: each step loads the same checks."""
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    monkeypatch.setenv("AKS_RAY_TARGET", "aks")
    monkeypatch.setenv("AKS_RAY_AZURE_SUBSCRIPTION_ID", SUBSCRIPTION)
    assert cli.main(step) == EXIT_USER
    assert "--allow-pull-request-infra" in capsys.readouterr().err
