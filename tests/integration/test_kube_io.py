"""The Kubernetes I/O layer (submit, wait, collect, cleanup) through the real kubernetes client.

The API server is tests/integration/fake_kube.py on 127.0.0.1: real HTTP, the
API's paths and JSON, label selectors applied as the API server applies them,
and a RayJob status that moves forward as KubeRay 1.7 would move it. What is
checked is this project's behaviour on top: what it creates and with which
labels, what it logs, what lands in the outputs, and what it deletes.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from pathlib import Path

import pytest
from fake_kube import FakeCluster, serve, write_kubeconfig

from aks_ray import cleanup, collect, config, gha, job, metrics
from aks_ray.errors import DeadlineExceeded, OperationalError, UserError


def find_run(cfg):
    return cfg.run_dir.require_job(cfg.kube.job_name, cfg.kube.namespace, cfg.target)


pytestmark = pytest.mark.integration

TOKEN = "fake-bearer-token-0123456789abcdef"
UNIT_DIR = Path(__file__).resolve().parents[1] / "unit"


def kuberay_objects():
    spec = importlib.util.spec_from_file_location("kuberay_objects_io", UNIT_DIR / "kuberay_objects.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


K = kuberay_objects()


def driver_log() -> str:
    records = [
        {"kind": "dataset", "name": "mnist-sample", "source": "bundled sample", "train_size": 1000, "test_size": 500},
        {
            "kind": "epoch",
            "epoch": 1,
            "epochs": 1,
            "train_loss": 1.2,
            "test_loss": 0.6,
            "test_accuracy": 0.81,
            "seconds": 4.0,
            "samples_per_second": 250.0,
        },
        {"kind": "final", "test_accuracy": 0.81, "test_loss": 0.6, "train_seconds": 9.5, "samples_per_second": 105.3},
    ]
    lines = ["2026-11-25 20:01:05,000 INFO cli.py:39 -- Job 'aks-ray-x' submitted successfully"]
    lines += [
        f"(RayTrainWorker pid=311) {metrics.METRICS_PREFIX}{json.dumps(r)}"
        if r["kind"] == "epoch"
        else metrics.METRICS_PREFIX + json.dumps(r)
        for r in records
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    cluster = FakeCluster()
    server, url = serve(cluster)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url, TOKEN)
    monkeypatch.setattr(job, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(job, "WAIT_GRACE_SECONDS", 0)
    yield cluster, kubeconfig
    server.shutdown()
    server.server_close()


def make_cfg(tmp_path, kubeconfig, **env):
    return config.load(
        {},
        {
            "AKS_RAY_TARGET": "kubeconfig",
            "AKS_RAY_KUBECONFIG": str(kubeconfig),
            "AKS_RAY_OUTPUT_DIR": str(tmp_path / "out"),
            "AKS_RAY_WORKERS": "1",
            "AKS_RAY_EPOCHS": "1",
            "AKS_RAY_TIMEOUT": "60",
            "GITHUB_RUN_ID": "4242",
            **env,
        },
    )


def add_run_pods(cluster: FakeCluster, job_name: str, cluster_name: str, submitter_log: str, head_phase: str = "Succeeded") -> None:
    """The pods KubeRay would have made for the RayJob, with aks-ray's template labels."""
    run_labels = {"app.kubernetes.io/managed-by": "aks-ray", "aks-ray.io/run": job_name}
    submitter = K.pod(
        f"{job_name}-8hj4k", None, "ray-job-submitter", started=True, state={"running": {"startedAt": "2026-11-25T20:01:00Z"}}
    )
    submitter["metadata"]["labels"].update(run_labels)
    head = K.pod(f"{cluster_name}-head-5vq8d", "head", "ray-head", state={"terminated": {"exitCode": 0, "reason": "Completed"}})
    head["metadata"]["labels"].update({**run_labels, "ray.io/cluster": cluster_name, "aks-ray.io/component": "ray-head"})
    head["status"]["phase"] = head_phase
    head["spec"]["containers"][0]["env"] = [{"name": "RAY_AUTH_TOKEN", "value": "literal-token-should-be-redacted"}]
    for pod in (submitter, head):
        cluster.pods[("aks-ray", pod["metadata"]["name"])] = pod
    cluster.logs[("aks-ray", submitter["metadata"]["name"], "ray-job-submitter")] = submitter_log
    cluster.logs[("aks-ray", head["metadata"]["name"], "ray-head")] = "2026-11-25 20:00:40,000 INFO head started\n"
    cluster.rayclusters[("aks-ray", cluster_name)] = {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": cluster_name, "namespace": "aks-ray", "labels": run_labels},
        "status": {"state": "ready"},
    }


def statuses(job_name: str, cluster_name: str, *steps: dict) -> list[dict]:
    base = {"jobId": f"{job_name}-tp9wx", "rayClusterName": cluster_name, "startTime": "2026-11-25T20:00:00Z"}
    return [{**base, **step} for step in steps]


def test_submit_wait_collect_cleanup(tmp_path, fake, capsys, caplog):
    caplog.set_level(logging.INFO)
    cluster, kubeconfig = fake
    cfg = make_cfg(tmp_path, kubeconfig)

    state = job.submit(cfg)
    assert state.job_name.startswith("aks-ray-4242-")
    assert "aks-ray" in cluster.namespaces
    created = cluster.rayjobs[("aks-ray", state.job_name)]
    assert created["metadata"]["labels"]["aks-ray.io/github-run-id"] == "4242"
    assert ("aks-ray", f"{state.job_name}-training") in cluster.configmaps
    # The sandbox exists before the RayJob: the namespace's quota and limit range, the run's NetworkPolicy.
    posts = [path for method, path in cluster.requests if method == "POST"]
    assert posts.index("/apis/networking.k8s.io/v1/namespaces/aks-ray/networkpolicies") < posts.index(
        "/apis/ray.io/v1/namespaces/aks-ray/rayjobs"
    )
    assert {(kind, name) for kind, _, name in cluster.sandbox} == {
        ("resourcequotas", "aks-ray"),
        ("limitranges", "aks-ray"),
        ("networkpolicies", f"{state.job_name}-sandbox"),
    }
    assert cluster.namespace_labels["aks-ray"]["pod-security.kubernetes.io/enforce"] == "restricted"
    policy = cluster.sandbox[("networkpolicies", "aks-ray", f"{state.job_name}-sandbox")]
    blocks = [peer["ipBlock"] for rule in policy["spec"]["egress"] for peer in rule.get("to", []) if "ipBlock" in peer]
    v4_block = next(block for block in blocks if block["cidr"] == "0.0.0.0/0")
    assert "127.0.0.1/32" in v4_block["except"], "the API server's own address (the kubeconfig's) is blocked"
    assert json.loads((cfg.output_dir / "state.json").read_text())["job_name"] == state.job_name
    # The RayJob owns the ConfigMap and the NetworkPolicy (set once its uid is known): deleting it takes them along.
    owner = {"apiVersion": "ray.io/v1", "kind": "RayJob", "name": state.job_name, "uid": "uid-1"}
    assert cluster.configmaps[("aks-ray", f"{state.job_name}-training")]["metadata"]["ownerReferences"] == [owner]
    assert policy["metadata"]["ownerReferences"] == [owner]
    assert {content_type for *_, content_type, _ in cluster.patches} == {"application/merge-patch+json"}

    cluster_name = f"{state.job_name}-x7k2p"
    add_run_pods(cluster, state.job_name, cluster_name, driver_log())
    cluster.status_script = statuses(
        state.job_name,
        cluster_name,
        {"jobDeploymentStatus": "Initializing", "jobStatus": ""},
        {"jobDeploymentStatus": "Running", "jobStatus": "PENDING"},
        {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"},
        {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"},
        {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED", "succeeded": 1},
    )
    final = job.wait(cfg, find_run(cfg))
    assert final.succeeded
    err = capsys.readouterr().err + caplog.text
    for line in (
        "jobDeploymentStatus: (none) -> Initializing",
        "jobDeploymentStatus: Initializing -> Running",
        "jobStatus: RUNNING -> SUCCEEDED",
    ):
        assert line in err
    assert "port-forward --address 127.0.0.1" in err, "the dashboard command is logged once the job runs"
    assert "epoch 1/1: train loss 1.2000" in err, "the streamed log is turned into progress lines"
    assert metrics.METRICS_PREFIX in (cfg.output_dir / "job.log").read_text()
    assert find_run(cfg).verdict == "SUCCEEDED"

    doc = collect.collect(cfg, find_run(cfg))
    assert doc["status"] == "SUCCEEDED"
    assert doc["final"]["test_accuracy"] == 0.81 and len(doc["epochs"]) == 1
    out = cfg.output_dir
    assert (out / "job.log").read_text() == driver_log()
    for relative in ("k8s/rayjob.yaml", "k8s/raycluster.yaml", "k8s/events.yaml", "summary.md", "metrics.json", "training-curves.png"):
        assert (out / relative).is_file(), relative
    assert (out / f"k8s/pods/{state.job_name}-8hj4k.ray-job-submitter.log").read_text() == driver_log()
    notes = (out / "k8s/collect-notes.txt").read_text()
    assert "head pod is gone or not running" in notes and "there is no model.pt" in notes
    assert not (out / "model.pt").exists()
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert TOKEN.encode() not in data, path
            assert b"literal-token-should-be-redacted" not in data, path

    # Another run's objects in the same namespace stay.
    cluster.configmaps[("aks-ray", "aks-ray-other-training")] = {
        "metadata": {
            "name": "aks-ray-other-training",
            "namespace": "aks-ray",
            "labels": {"app.kubernetes.io/managed-by": "aks-ray", "aks-ray.io/run": "aks-ray-other"},
        }
    }
    cluster.rayjobs[("aks-ray", "aks-ray-other")] = {
        "metadata": {
            "name": "aks-ray-other",
            "namespace": "aks-ray",
            "labels": {"app.kubernetes.io/managed-by": "aks-ray", "aks-ray.io/run": "aks-ray-other"},
        }
    }
    assert cleanup.main(cfg) == 0
    assert set(cluster.rayjobs) == {("aks-ray", "aks-ray-other")}
    assert set(cluster.configmaps) == {("aks-ray", "aks-ray-other-training")}
    assert {(kind, name) for kind, _, name in cluster.sandbox} == {("resourcequotas", "aks-ray"), ("limitranges", "aks-ray")}, (
        "the run's NetworkPolicy goes; the namespace's quota and limit range stay"
    )
    assert "aks-ray" in cluster.namespaces, "another run's objects keep the namespace this run created"


def test_cleanup_deletes_the_namespace_the_run_created_once_it_is_empty(tmp_path, fake):
    cluster, kubeconfig = fake
    cfg = make_cfg(tmp_path, kubeconfig, AKS_RAY_NAMESPACE="pr-17")
    state = job.submit(cfg)
    assert cluster.namespace_annotations["pr-17"] == {"aks-ray.io/created-by-run": state.job_name}
    # The run's own pods may still be terminating: they do not keep the namespace.
    pod = K.pod(f"{state.job_name}-8hj4k", None, "ray-job-submitter")
    pod["metadata"].update(namespace="pr-17", labels={**pod["metadata"]["labels"], "aks-ray.io/run": state.job_name})
    cluster.pods[("pr-17", pod["metadata"]["name"])] = pod
    assert cleanup.main(cfg) == 0
    assert "pr-17" not in cluster.namespaces


def test_cleanup_leaves_a_namespace_the_run_did_not_create(tmp_path, fake):
    cluster, kubeconfig = fake
    cluster.namespaces.add("shared")
    cfg = make_cfg(tmp_path, kubeconfig, AKS_RAY_NAMESPACE="shared")
    job.submit(cfg)
    assert cleanup.main(cfg) == 0
    assert "shared" in cluster.namespaces


def test_failure_ends_in_annotations_with_the_fix(tmp_path, fake, capsys, caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(gha, "_workflow_commands", True)  # as under GitHub Actions, whatever ran before
    cluster, kubeconfig = fake
    cfg = make_cfg(tmp_path, kubeconfig, AKS_RAY_RAY_IMAGE="rayproject/ray:2.60.0-py311-cpux")
    state = job.submit(cfg)
    cluster_name = f"{state.job_name}-x7k2p"
    worker = K.pod(
        f"{cluster_name}-train-worker-m2zlf",
        "worker",
        "ray-worker",
        image="rayproject/ray:2.60.0-py311-cpux",
        state=K.IMAGE_PULL_BACKOFF["status"]["containerStatuses"][0]["state"],
    )
    worker["metadata"]["labels"]["ray.io/cluster"] = cluster_name
    cluster.pods[("aks-ray", worker["metadata"]["name"])] = worker
    unrelated = K.event("Pod", "someone-else-abcde", "FailedScheduling", "0/1 nodes are available: 1 Insufficient cpu.")
    cluster.events = [
        K.event("Pod", worker["metadata"]["name"], "BackOff", 'Back-off pulling image "rayproject/ray:2.60.0-py311-cpux"'),
        unrelated,
    ]
    cluster.status_script = statuses(
        state.job_name,
        cluster_name,
        {"jobDeploymentStatus": "Initializing", "jobStatus": ""},
        {
            "jobDeploymentStatus": "Failed",
            "jobStatus": "",
            "reason": "PreRunningDeadlineExceeded",
            "failed": 1,
            "message": "The RayJob has passed the preRunningDeadlineSeconds.",
        },
    )
    with pytest.raises(OperationalError, match="PreRunningDeadlineExceeded"):
        job.wait(cfg, find_run(cfg))
    err = capsys.readouterr().err + caplog.text
    assert "::error title=aks-ray%3A image pull failed::The Ray worker pod" in err
    assert "Fix: check that --ray-image" in err
    assert "cluster never became ready" in err
    assert "Insufficient cpu" not in err, "events of other objects are not this run's problem"
    assert find_run(cfg).verdict == "TIMED_OUT"
    doc = collect.collect(cfg, find_run(cfg))
    assert doc["status"] == "TIMED_OUT"
    assert "image pull failed" in (cfg.output_dir / "summary.md").read_text()


def test_wait_gives_up_at_the_deadline(tmp_path, fake):
    cluster, kubeconfig = fake
    cfg = make_cfg(tmp_path, kubeconfig, AKS_RAY_TIMEOUT="1")
    state = job.submit(cfg)
    cluster.status_script = statuses(state.job_name, f"{state.job_name}-x7k2p", {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"})
    with pytest.raises(DeadlineExceeded, match="did not finish within 1 s"):
        job.wait(cfg, find_run(cfg))
    assert find_run(cfg).verdict == "TIMED_OUT"


def test_a_second_submit_with_the_same_name_is_refused(tmp_path, fake):
    _, kubeconfig = fake
    cfg = make_cfg(tmp_path, kubeconfig, AKS_RAY_JOB_NAME="fixed-name")
    job.submit(cfg)
    with pytest.raises(UserError, match="already exists") as excinfo:
        job.submit(cfg)
    assert excinfo.value.exit_code == 2


def test_a_refused_rayjob_is_bad_input_and_nothing_is_created(tmp_path, fake):
    cluster, kubeconfig = fake
    cluster.refuse_dry_run["RayJob"] = 'RayJob.ray.io "x" is invalid: spec.deletionStrategy: Invalid value: "object": no such policy'
    cfg = make_cfg(tmp_path, kubeconfig)
    with pytest.raises(UserError, match="no such policy") as excinfo:
        job.submit(cfg)
    assert excinfo.value.exit_code == 2
    assert cluster.configmaps == {} and cluster.rayjobs == {}, "the ConfigMap is not created when the RayJob would be refused"
    assert not [key for key in cluster.sandbox if key[0] == "networkpolicies"], "nor the run's NetworkPolicy"


def test_collect_without_a_cluster_still_writes_the_outputs(tmp_path, fake):
    _, kubeconfig = fake
    cfg = make_cfg(tmp_path, kubeconfig)
    state = job.submit(cfg)
    (cfg.output_dir / "job.log").write_text(driver_log())  # what `job wait` streamed before the cluster went away
    broken = make_cfg(tmp_path, tmp_path / "gone-kubeconfig")
    with pytest.raises(UserError, match="gone-kubeconfig"):
        collect.collect(broken, state)
    doc = json.loads((cfg.output_dir / "metrics.json").read_text())
    assert doc["status"] == "FAILED" and doc["final"]["test_accuracy"] == 0.81, "metrics recovered from the streamed log"
    assert "gone-kubeconfig" in (cfg.output_dir / "summary.md").read_text()


def aks_node(name: str, vm_size: str, created: str) -> dict:
    """A Node as AKS reports it: its VM size in the well-known instance-type label."""
    labels = {"node.kubernetes.io/instance-type": vm_size, "kubernetes.azure.com/agentpool": name.split("-")[1]}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels, "creationTimestamp": created}}


def test_collect_on_aks_adds_a_cost_estimate_from_the_nodes_and_the_price_list(tmp_path, fake, monkeypatch):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))
    from retail_prices import FakeRetailPrices
    from retail_prices import serve as serve_prices

    from aks_ray import cost

    cluster, kubeconfig = fake
    cfg = make_cfg(tmp_path, kubeconfig, AKS_RAY_TARGET="aks", AKS_RAY_INFRA_MODE="skip", AKS_RAY_LOCATION="eastus")
    state = job.submit(cfg)
    (cfg.output_dir / "job.log").write_text(driver_log())
    cluster.nodes = [
        aks_node("aks-system-12345678-vmss000000", "Standard_D2s_v5", "2026-11-01T00:00:00Z"),
        aks_node("aks-ray-12345678-vmss000000", "Standard_D4s_v5", "2026-11-01T00:00:00Z"),
    ]
    prices = FakeRetailPrices()
    prices.add("Standard_D2s_v5", "eastus", 0.096)
    prices.add("Standard_D4s_v5", "eastus", 0.192)
    with serve_prices(prices):
        monkeypatch.setattr(cost, "PRICES_URL", prices.url + "/api/retail/prices")
        doc = collect.collect(cfg, state)

    block = json.loads((cfg.output_dir / "metrics.json").read_text())["cost"]
    assert block == doc["cost"] and block["estimate"] is True and block["region"] == "eastus"
    assert [line["vm_size"] for line in block["lines"]] == ["Standard_D2s_v5", "Standard_D4s_v5"]
    assert all(line["hourly_price"] for line in block["lines"]) and block["unpriced"] == []
    assert "### Cost" in (cfg.output_dir / "summary.md").read_text()


def test_collect_on_kubeconfig_has_no_cost_line(tmp_path, fake):
    cluster, kubeconfig = fake
    cfg = make_cfg(tmp_path, kubeconfig)
    state = job.submit(cfg)
    (cfg.output_dir / "job.log").write_text(driver_log())
    doc = collect.collect(cfg, state)
    assert "cost" not in doc and "### Cost" not in (cfg.output_dir / "summary.md").read_text()
    assert ("GET", "/api/v1/nodes") not in cluster.requests


# ---------------------------------------------------------------- a queued run (Kueue)


QUEUED_STATUS = {"jobDeploymentStatus": "Suspended", "startTime": "2026-11-25T20:00:00Z", "rayClusterStatus": {}}


def queued_run(tmp_path, fake, **env):
    cluster, kubeconfig = fake
    cluster.kueue = env.pop("kueue", "served")
    cfg = make_cfg(tmp_path, kubeconfig, AKS_RAY_QUEUE_NAME=K.QUEUE, **env)
    state = job.submit(cfg)
    return cluster, cfg, state


def test_a_queued_run_waits_in_kueues_queue_and_its_deadline_starts_at_admission(tmp_path, fake, caplog):
    """Queued for about 2 s, with a --timeout of 1 s: the run succeeds only if the queue's time is not the job's."""
    caplog.set_level(logging.INFO)
    cluster, cfg, state = queued_run(tmp_path, fake, AKS_RAY_TIMEOUT="1", AKS_RAY_QUEUE_TIMEOUT="60")
    created = cluster.rayjobs[("aks-ray", state.job_name)]
    assert created["spec"]["suspend"] is True and created["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == K.QUEUE
    cluster_name = f"{state.job_name}-x7k2p"
    add_run_pods(cluster, state.job_name, cluster_name, driver_log())
    queued_polls = 40
    cluster.suspend_script = [True] * queued_polls + [False]
    cluster.workload_statuses = [K.WORKLOAD_PENDING["status"]] * queued_polls + [K.WORKLOAD_ADMITTED["status"]]
    cluster.status_script = [QUEUED_STATUS] * queued_polls + statuses(
        state.job_name,
        cluster_name,
        {"jobDeploymentStatus": "Initializing", "jobStatus": ""},
        {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"},
        {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED", "succeeded": 1},
    )

    final = job.wait(cfg, find_run(cfg))

    assert final.succeeded and find_run(cfg).verdict == "SUCCEEDED"
    log = caplog.text
    assert f"queued in {K.QUEUE} (Suspended; Kueue: Pending: {K.PENDING_MESSAGE}" in log
    assert log.count(f"queued in {K.QUEUE}") == 1, "the same reason is said once, not at every poll"
    assert f"admitted by Kueue's queue {K.QUEUE} after" in log
    assert "is Suspended" not in log, "a queued RayJob's Suspended is the queue's, not a warning"
    # The Workload was read by the RayJob's UID, as Kueue labels it.
    reads = [path for method, path in cluster.requests if path.endswith("/workloads")]
    assert reads and all(path == "/apis/kueue.x-k8s.io/v1beta2/namespaces/aks-ray/workloads" for path in reads)


def test_a_run_never_admitted_ends_at_the_queue_timeout_with_kueues_reason(tmp_path, fake, caplog, capsys, monkeypatch):
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(gha, "_workflow_commands", True)
    cluster, cfg, _state = queued_run(tmp_path, fake, AKS_RAY_QUEUE_TIMEOUT="1")
    cluster.suspend_script = [True]
    cluster.workload_statuses = [K.WORKLOAD_PENDING["status"]]
    cluster.status_script = [QUEUED_STATUS]

    with pytest.raises(DeadlineExceeded) as excinfo:
        job.wait(cfg, find_run(cfg))

    assert f"was never admitted by Kueue's queue {K.QUEUE} within 1 s" in excinfo.value.message
    assert "ClusterQueue" in excinfo.value.fix and "--queue-timeout" in excinfo.value.fix
    err = capsys.readouterr().err
    assert "::error title=aks-ray%3A never admitted::" in err
    assert K.PENDING_MESSAGE in err
    assert find_run(cfg).verdict == "TIMED_OUT"
    assert not any(path.endswith("/pods") for _, path in cluster.requests[-3:]), "nothing of the run was followed: it never started"


def test_reading_workloads_forbidden_does_not_fail_a_queued_run(tmp_path, fake, caplog):
    caplog.set_level(logging.INFO)
    cluster, cfg, state = queued_run(tmp_path, fake, kueue="forbidden")
    cluster_name = f"{state.job_name}-x7k2p"
    add_run_pods(cluster, state.job_name, cluster_name, driver_log())
    cluster.suspend_script = [True, True, True, False]
    cluster.status_script = [QUEUED_STATUS] * 3 + statuses(
        state.job_name, cluster_name, {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED", "succeeded": 1}
    )

    assert job.wait(cfg, find_run(cfg)).succeeded

    assert "cannot read Kueue's workloads in aks-ray (workloads.kueue.x-k8s.io is forbidden" in caplog.text
    assert f"queued in {K.QUEUE} (Suspended; " in caplog.text
    reads = [path for method, path in cluster.requests if path.endswith("/workloads")]
    # submit's check once, then the wait's first read; a refusal is not asked again.
    assert len(reads) == 2


def test_a_queue_on_a_cluster_without_kueue_is_refused_before_anything_is_created(tmp_path, fake):
    cluster, kubeconfig = fake
    cfg = make_cfg(tmp_path, kubeconfig, AKS_RAY_QUEUE_NAME=K.QUEUE)
    with pytest.raises(UserError, match=r"--queue-name aks-ray-queue: the cluster has no Kueue") as excinfo:
        job.submit(cfg)
    assert "install Kueue" in excinfo.value.fix
    assert not cluster.rayjobs and not cluster.configmaps and not cluster.namespaces
    assert not [path for method, path in cluster.requests if method == "POST" and "networkpolicies" in path]
    # Both API versions asked before concluding there is no Kueue.
    asked = [path for _, path in cluster.requests if path.endswith("/workloads")]
    assert [p.split("/")[3] for p in asked] == ["v1beta2", "v1beta1"]


def test_an_evicted_run_goes_back_into_the_queue_and_runs_again(tmp_path, fake, caplog, capsys, monkeypatch):
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(gha, "_workflow_commands", True)
    cluster, cfg, state = queued_run(tmp_path, fake)
    cluster_name = f"{state.job_name}-x7k2p"
    add_run_pods(cluster, state.job_name, cluster_name, driver_log())
    running = statuses(state.job_name, cluster_name, {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"})
    done = statuses(state.job_name, cluster_name, {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED", "succeeded": 1})
    # Admitted at once; runs; preempted (suspend true, Workload evicted); queued; admitted again; done.
    cluster.suspend_script = [False, False, True, True, True, False, False]
    cluster.status_script = [
        QUEUED_STATUS,
        *running,
        {**running[0], "jobDeploymentStatus": "Suspending"},
        QUEUED_STATUS,
        QUEUED_STATUS,
        *running,
        *done,
    ]
    cluster.workload_statuses = [
        K.WORKLOAD_ADMITTED["status"],
        K.WORKLOAD_EVICTED["status"],
        K.WORKLOAD_EVICTED["status"],
        K.WORKLOAD_PENDING["status"],
        K.WORKLOAD_ADMITTED["status"],
    ]

    assert job.wait(cfg, find_run(cfg)).succeeded

    err = capsys.readouterr().err
    assert f"back into the queue {K.QUEUE}: evicted (Preempted): Preempted to accommodate a workload" in err
    assert caplog.text.count(f"admitted by Kueue's queue {K.QUEUE}") == 2


def test_a_queued_rayjob_deleted_while_it_waits_is_not_a_timeout(tmp_path, fake):
    cluster, cfg, state = queued_run(tmp_path, fake)
    cluster.suspend_script = [True]
    cluster.workload_statuses = [K.WORKLOAD_PENDING["status"]]
    cluster.status_script = [QUEUED_STATUS]
    del cluster.rayjobs[("aks-ray", state.job_name)]
    with pytest.raises(OperationalError, match="does not exist") as excinfo:
        job.wait(cfg, find_run(cfg))
    assert not isinstance(excinfo.value, DeadlineExceeded)
    assert find_run(cfg).verdict != "TIMED_OUT"
