"""The sandbox of a run's pods: what the rendered objects allow, and what they refuse."""

from __future__ import annotations

import ipaddress

import pytest

from aks_ray import config, rayjob, sandbox
from aks_ray.errors import ConfigError

RUN = "aks-ray-42-abc123"


def make_cfg(tmp_path, **env):
    return config.load({}, {"AKS_RAY_OUTPUT_DIR": str(tmp_path / "out"), "AKS_RAY_TARGET": "kubeconfig", **env})


def objects(cfg):
    return rayjob.render_run(cfg, rayjob.identity(cfg, RUN))


def pods(job):
    cluster = job["spec"]["rayClusterSpec"]
    return {
        "head": cluster["headGroupSpec"]["template"]["spec"],
        "worker": cluster["workerGroupSpecs"][0]["template"]["spec"],
        "submitter": job["spec"]["submitterPodTemplate"]["spec"],
    }


RESTRICTED_VOLUME_TYPES = {"configMap", "emptyDir", "projected", "secret", "downwardAPI", "csi", "ephemeral", "persistentVolumeClaim"}


# The restricted Pod Security Standard's rules for what aks-ray renders
# (https://kubernetes.io/docs/concepts/security/pod-security-standards/, "Restricted").
def restricted_violations(pod: dict) -> list[str]:
    problems = []
    pod_context = pod.get("securityContext") or {}
    for container in pod.get("initContainers", []) + pod["containers"]:
        context = container.get("securityContext") or {}
        name = container["name"]
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{name}: capabilities must drop ALL")
        if set((context.get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities")
        if context.get("privileged"):
            problems.append(f"{name}: privileged")
        if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot must be true")
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            problems.append(f"{name}: runs as uid 0")
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
    for volume in pod.get("volumes", []):
        if set(volume) - {"name"} - RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']}: a type restricted pods may not use")
    if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
        problems.append("host namespaces")
    return problems


ENVS = {
    "defaults": {},
    "aks": {"AKS_RAY_TARGET": "aks", "AKS_RAY_INFRA_MODE": "skip"},
    "gpu": {"AKS_RAY_USE_GPU": "true"},
    "custom-image": {"AKS_RAY_RAY_IMAGE": "myregistry.azurecr.io/ray:2.60.0-torch@sha256:" + "a" * 64},
}


@pytest.mark.parametrize("env", ENVS.values(), ids=ENVS.keys())
def test_every_pod_is_restricted_and_has_no_service_account_token(tmp_path, env):
    job = rayjob.find(objects(make_cfg(tmp_path, **env)), "RayJob")
    for role, pod in pods(job).items():
        assert pod["automountServiceAccountToken"] is False, role
        assert restricted_violations(pod) == [], role
        user = pod["securityContext"]["runAsUser"]
        assert isinstance(user, int) and user > 0, "runAsNonRoot needs a numeric non-root user for images that name theirs"


def test_the_restricted_check_can_say_no(tmp_path):
    job = rayjob.find(objects(make_cfg(tmp_path)), "RayJob")
    pod = pods(job)["head"]
    pod["containers"][0]["securityContext"] = {"allowPrivilegeEscalation": True}
    pod["securityContext"]["seccompProfile"] = {"type": "Unconfined"}
    pod["volumes"] = [{"name": "host", "hostPath": {"path": "/"}}]
    problems = restricted_violations(pod)
    assert any("allowPrivilegeEscalation" in p for p in problems)
    assert any("capabilities" in p for p in problems)
    assert any("seccompProfile" in p for p in problems)
    assert any("volume host" in p for p in problems)


def test_the_namespace_enforces_the_restricted_standard(tmp_path):
    namespace = rayjob.find(objects(make_cfg(tmp_path)), "Namespace")
    assert namespace["metadata"]["labels"][sandbox.POD_SECURITY_LABEL] == "restricted"
    assert sandbox.namespace_is_enforced(namespace)
    assert not sandbox.namespace_is_enforced({"metadata": {"labels": {sandbox.POD_SECURITY_LABEL: "baseline"}}})


def test_quota_follows_the_option_and_every_container_gets_resources(tmp_path):
    rendered = objects(make_cfg(tmp_path, AKS_RAY_NAMESPACE_QUOTA="pods=5,requests.cpu=4"))
    quota = rayjob.find(rendered, "ResourceQuota")
    assert quota["spec"]["hard"] == {"pods": "5", "requests.cpu": "4"}
    assert quota["metadata"]["namespace"] == "aks-ray"
    assert rayjob.RUN_LABEL not in quota["metadata"]["labels"], "the namespace's, not the run's: cleanup leaves it"
    limits = rayjob.find(rendered, "LimitRange")["spec"]["limits"][0]
    assert set(limits["defaultRequest"]) == set(limits["default"]) == {"cpu", "memory"}
    # A quota on cpu or memory refuses a pod with any container that states none: ours all do.
    for role, pod in pods(rayjob.find(rendered, "RayJob")).items():
        for container in pod.get("initContainers", []) + pod["containers"]:
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), (role, container["name"])


def policy_of(cfg):
    return rayjob.find(objects(cfg), "NetworkPolicy")


def test_the_policy_selects_the_run_and_lets_in_only_the_run_and_the_operator(tmp_path):
    policy = policy_of(make_cfg(tmp_path, AKS_RAY_OPERATOR_NAMESPACE="ray-ops"))
    spec = policy["spec"]
    assert policy["metadata"]["name"] == f"{RUN}-sandbox"
    assert policy["metadata"]["labels"][rayjob.RUN_LABEL] == RUN, "cleanup finds it by the run's label"
    assert spec["podSelector"] == {"matchLabels": {rayjob.RUN_LABEL: RUN}}
    assert spec["policyTypes"] == ["Ingress", "Egress"], "both directions closed by default"
    (ingress,) = spec["ingress"]
    assert ingress["from"] == [
        {"podSelector": {"matchLabels": {rayjob.RUN_LABEL: RUN}}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ray-ops"}}},
    ]
    assert "ports" not in ingress


def egress_blocks(policy):
    return [peer["ipBlock"] for rule in policy["spec"]["egress"] for peer in rule.get("to", []) if "ipBlock" in peer]


def test_egress_reaches_the_run_dns_and_the_internet_but_not_the_blocked_ranges(tmp_path):
    policy = policy_of(make_cfg(tmp_path))
    egress = policy["spec"]["egress"]
    assert {"to": [{"podSelector": {"matchLabels": {rayjob.RUN_LABEL: RUN}}}]} in egress
    dns = next(rule for rule in egress if rule.get("ports"))
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    # Port 53, and CoreDNS's named ports for a DNS pod that listens elsewhere (the local cluster's, on 1053).
    assert sorted((p["protocol"], str(p["port"])) for p in dns["ports"]) == [("TCP", "53"), ("TCP", "dns-tcp"), ("UDP", "53"), ("UDP", "dns")]
    v4 = next(block for block in egress_blocks(policy) if block["cidr"] == "0.0.0.0/0")
    blocked = [ipaddress.ip_network(c) for c in v4["except"]]
    for address in ("169.254.169.254", "168.63.129.16", "10.244.1.7", "10.0.0.1", "10.224.0.4", "172.17.0.2", "192.168.1.1"):
        assert any(ipaddress.ip_address(address) in net for net in blocked), address
    for address in ("140.82.112.3", "151.101.0.223"):
        assert not any(ipaddress.ip_address(address) in net for net in blocked), f"{address}: the internet stays open"
    v6 = next(block for block in egress_blocks(policy) if block["cidr"] == "::/0")
    assert "fc00::/7" in v6["except"]


def test_blocked_ranges_are_an_option(tmp_path):
    policy = policy_of(make_cfg(tmp_path, AKS_RAY_EGRESS_BLOCKED_CIDRS="169.254.0.0/16, 10.1.0.0/16"))
    assert egress_blocks(policy) == [{"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16", "10.1.0.0/16"]}, {"cidr": "::/0"}]
    open_policy = policy_of(make_cfg(tmp_path, AKS_RAY_EGRESS_BLOCKED_CIDRS="none"))
    assert egress_blocks(open_policy) == [{"cidr": "0.0.0.0/0"}, {"cidr": "::/0"}]
    closed = policy_of(make_cfg(tmp_path, AKS_RAY_EGRESS_BLOCKED_CIDRS="0.0.0.0/0,::/0"))
    assert egress_blocks(closed) == [], "everything blocked: only the run's pods and DNS"


def test_the_api_server_is_blocked_at_submit(tmp_path):
    policy = policy_of(make_cfg(tmp_path))
    # A public AKS API server, and an address already inside a blocked range (not added twice).
    added = sandbox.block_addresses(policy, ["20.50.1.2", "10.0.0.1", "2603:1030::5"])
    assert added == ["20.50.1.2/32", "2603:1030::5/128"]
    assert "20.50.1.2/32" in egress_blocks(policy)[0]["except"]
    assert "2603:1030::5/128" in egress_blocks(policy)[1]["except"]


def test_api_server_addresses_from_the_kubeconfig_url():
    assert sandbox.api_server_addresses("https://10.1.2.3:6443") == ["10.1.2.3"]

    def resolve(host, port, type=None):  # the shape of socket.getaddrinfo's answer
        assert host == "myaks-dns-1234.hcp.eastus.azmk8s.io"
        return [(2, 1, 6, "", ("20.1.2.3", 0)), (2, 1, 6, "", ("20.1.2.3", 0)), (10, 1, 6, "", ("2603::1", 0, 0, 0))]

    assert sandbox.api_server_addresses("https://myaks-dns-1234.hcp.eastus.azmk8s.io:443", resolve) == ["20.1.2.3", "2603::1"]

    def fails(host, port, type=None):
        raise OSError("Name or service not known")

    assert sandbox.api_server_addresses("https://nowhere.invalid", fails) == []


def test_keep_cluster_is_bounded(tmp_path):
    job = rayjob.find(objects(make_cfg(tmp_path, AKS_RAY_KEEP_CLUSTER="true", AKS_RAY_KEEP_CLUSTER_TTL="2h")), "RayJob")
    rules = job["spec"]["deletionStrategy"]["deletionRules"]
    assert rules and all(rule["condition"]["ttlSeconds"] == 7200 for rule in rules if rule["policy"] == "DeleteCluster")
    assert all(rule["condition"]["ttlSeconds"] == 7200 + 1800 for rule in rules if rule["policy"] == "DeleteSelf"), "the RayJob goes after"


def test_symlinks_out_of_the_training_folder_are_refused(tmp_path):
    training = tmp_path / "training"
    training.mkdir()
    (training / "train.py").write_text("print('hi')\n")
    secret = tmp_path / "runner-secret.txt"
    secret.write_text("s3cret\n")
    (training / "data.txt").symlink_to(secret)
    (training / "inside.py").symlink_to(training / "train.py")  # a link inside the folder is fine
    assert config.links_leaving(training) == [f"data.txt -> {secret}"]
    with pytest.raises(ConfigError) as excinfo:
        make_cfg(tmp_path, AKS_RAY_TRAINING_DIR=str(training), AKS_RAY_ENTRYPOINT="python train.py")
    assert "data.txt" in excinfo.value.problems[0] and "--training-dir" in excinfo.value.problems[0]
    assert excinfo.value.exit_code == 2


def test_a_linked_folder_out_of_the_training_folder_is_refused_too(tmp_path):
    training = tmp_path / "training"
    training.mkdir()
    (training / "train.py").write_text("print('hi')\n")
    (training / "home").symlink_to(tmp_path)
    assert config.links_leaving(training) == [f"home -> {tmp_path}"]
