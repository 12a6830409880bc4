"""Three runs at once through a Kueue queue that fits one (issue 13, point 9): admitted one after another, all SUCCEEDED.

Needs Kueue on the cluster (the kueue.x-k8s.io API group); skipped with the reason where it has
none. The test makes its own ResourceFlavor and ClusterQueue (cluster-wide, named after its
namespace, deleted at the end) and a LocalQueue in its namespace. The ClusterQueue's quota fits
one run of the suite's size (run_env: head 500m and 3Gi, one worker of 1 CPU and 2Gi, the
submitter 200m and 256Mi: 1.7 CPUs and 5.25Gi) and not two, so Kueue admits the runs in turn
while a watcher records how many Workloads of the namespace are admitted at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

# The suite's run options (the kubeconfig pipeline's fixture), shared rather than copied.
from test_kubeconfig_pipeline import run_env  # noqa: F401

from aks_ray.config import PROJECT_ROOT

pytestmark = [pytest.mark.kind, pytest.mark.e2e_slow]

KUEUE_GROUP = "kueue.x-k8s.io"
RUNS = 3
# One run asks for 1.7 CPUs and 5.25Gi (the module's docstring): 2 CPUs and 8Gi fit one, never two.
CPU_QUOTA, MEMORY_QUOTA = "2", "8Gi"


@pytest.fixture
def kueue_version(kube_api) -> str:
    """The version of Kueue's API the cluster prefers; skip where Kueue is not installed."""
    from kubernetes import client

    groups = client.ApisApi(kube_api.api_client).get_api_versions().groups
    group = next((g for g in groups if g.name == KUEUE_GROUP), None)
    if group is None:
        pytest.skip(f"the cluster has no Kueue (no {KUEUE_GROUP} API group): install Kueue to run the queue's e2e test")
    return group.preferred_version.version


@pytest.fixture
def local_queue(kube_api, namespace, kueue_version):
    """A ResourceFlavor and a ClusterQueue that fits one run, for this namespace only, and its LocalQueue."""
    from kubernetes import client

    custom = client.CustomObjectsApi(kube_api.api_client)
    api_version = f"{KUEUE_GROUP}/{kueue_version}"
    flavor, cluster_queue, queue = f"{namespace}-flavor", f"{namespace}-cq", "aks-ray-queue"
    custom.create_cluster_custom_object(
        KUEUE_GROUP, kueue_version, "resourceflavors", {"apiVersion": api_version, "kind": "ResourceFlavor", "metadata": {"name": flavor}}
    )
    custom.create_cluster_custom_object(
        KUEUE_GROUP,
        kueue_version,
        "clusterqueues",
        {
            "apiVersion": api_version,
            "kind": "ClusterQueue",
            "metadata": {"name": cluster_queue},
            "spec": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "queueingStrategy": "BestEffortFIFO",
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory"],
                        "flavors": [
                            {
                                "name": flavor,
                                "resources": [{"name": "cpu", "nominalQuota": CPU_QUOTA}, {"name": "memory", "nominalQuota": MEMORY_QUOTA}],
                            }
                        ],
                    }
                ],
            },
        },
    )
    custom.create_namespaced_custom_object(
        KUEUE_GROUP,
        kueue_version,
        namespace,
        "localqueues",
        {
            "apiVersion": api_version,
            "kind": "LocalQueue",
            "metadata": {"name": queue, "namespace": namespace},
            "spec": {"clusterQueue": cluster_queue},
        },
    )
    deadline = time.monotonic() + 120
    while True:
        conditions = (custom.get_cluster_custom_object(KUEUE_GROUP, kueue_version, "clusterqueues", cluster_queue).get("status") or {}).get(
            "conditions"
        ) or []
        if any(c["type"] == "Active" and c["status"] == "True" for c in conditions):
            break
        assert time.monotonic() < deadline, f"ClusterQueue {cluster_queue} did not become Active within 120 s: {conditions}"
        time.sleep(2)
    yield queue
    for plural, name in (("clusterqueues", cluster_queue), ("resourceflavors", flavor)):
        try:
            custom.delete_cluster_custom_object(KUEUE_GROUP, kueue_version, plural, name, propagation_policy="Background")
        except client.ApiException as exc:
            sys.stderr.write(f"could not delete {plural}/{name}: {exc.reason}\n")


class AdmissionWatcher(threading.Thread):
    """Every few seconds, which Workloads of the namespace Kueue has admitted: the most at once, and when each was."""

    def __init__(self, kube_api, namespace: str, version: str) -> None:
        super().__init__(daemon=True)
        from kubernetes import client

        self.custom = client.CustomObjectsApi(kube_api.api_client)
        self.namespace, self.version = namespace, version
        self.stopping = threading.Event()
        self.most_at_once = 0
        self.first_admitted: dict[str, float] = {}
        self.started = time.monotonic()

    def run(self) -> None:
        while not self.stopping.wait(3):
            try:
                items = self.custom.list_namespaced_custom_object(KUEUE_GROUP, self.version, self.namespace, "workloads")["items"]
            except Exception as exc:
                sys.stderr.write(f"listing workloads: {exc}\n")
                continue
            admitted = [
                w["metadata"]["name"]
                for w in items
                if any(c["type"] == "Admitted" and c["status"] == "True" for c in (w.get("status") or {}).get("conditions") or [])
                and not any(c["type"] == "Finished" and c["status"] == "True" for c in w["status"].get("conditions") or [])
            ]
            self.most_at_once = max(self.most_at_once, len(admitted))
            for name in admitted:
                self.first_admitted.setdefault(name, time.monotonic() - self.started)


# kueue_version first: a cluster without Kueue skips before a namespace is made.
def test_three_runs_through_a_queue_that_fits_one_succeed_one_after_another(kueue_version, local_queue, run_env, kube_api, namespace):  # noqa: F811
    envs = [
        {
            **run_env,
            "AKS_RAY_OUTPUT_DIR": str(Path(run_env["AKS_RAY_OUTPUT_DIR"]).parent / f"out-{i}"),
            "AKS_RAY_QUEUE_NAME": local_queue,
            # Room for the two runs ahead of the last one (a few minutes each on the 2-core node).
            "AKS_RAY_QUEUE_TIMEOUT": "60m",
        }
        for i in range(1, RUNS + 1)
    ]
    watcher = AdmissionWatcher(kube_api, namespace, kueue_version)
    watcher.start()
    started = time.monotonic()
    try:
        runs = [
            subprocess.Popen([sys.executable, "-m", "aks_ray.cli", "run"], env=env, cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True)
            for env in envs
        ]
        results = [run.communicate(timeout=3 * 3600)[1] for run in runs]
    finally:
        watcher.stopping.set()
        watcher.join(timeout=10)
    elapsed = time.monotonic() - started
    for run, stderr in zip(runs, results, strict=True):
        sys.stderr.write(stderr[-8000:])
        assert run.returncode == 0, stderr[-5000:]
    for env in envs:
        metrics = json.loads((Path(env["AKS_RAY_OUTPUT_DIR"]) / "metrics.json").read_text())
        assert metrics["status"] == "SUCCEEDED", metrics
    # None failed on a deadline, nor waited on the node: each started only once admitted.
    for stderr in results:
        assert "DeadlineExceeded" not in stderr and "never admitted" not in stderr
        assert f"admitted by Kueue's queue {local_queue}" in stderr
    # One after another: never two admitted at once, and the later runs waited in the queue.
    assert watcher.most_at_once == 1, f"{watcher.most_at_once} Workloads were admitted at once"
    assert sum(f"queued in {local_queue}" in stderr for stderr in results) >= RUNS - 1
    assert len(watcher.first_admitted) == RUNS, watcher.first_admitted
    sys.stderr.write(
        f"three queued runs took {elapsed:.0f} s; admitted at "
        + ", ".join(f"{seconds:.0f} s" for seconds in sorted(watcher.first_admitted.values()))
        + "\n"
    )
