"""The shared operator: no chart repository when nothing changes, a Lease between runs, pending releases left alone."""

from __future__ import annotations

import json
import time

import pytest
from fake_kube import FakeCluster, serve, write_kubeconfig

from aks_ray import config, kube, lease, operator, versions
from aks_ray.config import PROJECT_ROOT
from aks_ray.errors import DeadlineExceeded, OperationalError

NS = "kuberay-system"


@pytest.fixture
def fake(tmp_path):
    cluster = FakeCluster()
    server, url = serve(cluster)
    cluster.namespaces.add(NS)
    yield cluster, write_kubeconfig(tmp_path / "kubeconfig", url, "not-a-real-token")
    server.shutdown()
    server.server_close()


def cfg_for(tmp_path, kubeconfig, **env):
    return config.load(
        {}, {"AKS_RAY_TARGET": "kubeconfig", "AKS_RAY_KUBECONFIG": str(kubeconfig), "AKS_RAY_OUTPUT_DIR": str(tmp_path / "out"), **env}
    )


def test_a_second_run_waits_for_the_lock_and_gives_up_at_its_deadline_naming_the_holder(tmp_path, fake):
    _, kubeconfig = fake
    api = kube.connect(cfg_for(tmp_path, kubeconfig))
    first = lease.LeaseLock(api, NS, "aks-ray-operator-install", "run A", duration=600, deadline=5)
    second = lease.LeaseLock(api, NS, "aks-ray-operator-install", "run B", duration=600, deadline=1.0, poll=0.2)
    first.acquire()
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as info:
        second.acquire()
    assert 0.9 <= time.monotonic() - started < 10
    assert "run A" in str(info.value)
    second.release()  # not its lease: it stays
    with pytest.raises(DeadlineExceeded):
        lease.LeaseLock(api, NS, "aks-ray-operator-install", "run C", duration=600, deadline=0.3, poll=0.1).acquire()
    first.release()
    with lease.LeaseLock(api, NS, "aks-ray-operator-install", "run B", duration=600, deadline=1.0):
        pass


def test_an_expired_lease_of_a_lost_run_is_taken_over(tmp_path, fake):
    cluster, kubeconfig = fake
    api = kube.connect(cfg_for(tmp_path, kubeconfig))
    old = "2026-12-01T20:00:00.000000Z"
    cluster.leases[(NS, "aks-ray-operator-install")] = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "aks-ray-operator-install", "namespace": NS, "resourceVersion": "7"},
        "spec": {"holderIdentity": "lost runner", "leaseDurationSeconds": 600, "acquireTime": old, "renewTime": old},
    }
    lock = lease.LeaseLock(api, NS, "aks-ray-operator-install", "run B", duration=600, deadline=2)
    lock.acquire()
    assert cluster.leases[(NS, "aks-ray-operator-install")]["spec"]["holderIdentity"] == "run B"
    lock.release()
    assert (NS, "aks-ray-operator-install") not in cluster.leases


@pytest.mark.parametrize(
    ("renewed_seconds_ago", "duration", "is_expired"),
    [(10, 600, False), (700, 600, True), (None, 600, True)],
)
def test_expiry(renewed_seconds_ago, duration, is_expired):
    now = time.time()
    spec = {"holderIdentity": "x", "leaseDurationSeconds": duration}
    if renewed_seconds_ago is not None:
        spec["renewTime"] = lease.now_micro(lambda: now - renewed_seconds_ago)
    assert lease.expired({"spec": spec}, now) is is_expired


# A stand-in for helm: `status` and `get values` answer with helm 3's JSON for a deployed release;
# anything else (pulling the chart, installing) is written down and fails, as an unreachable repository does.
FAKE_HELM = """#!/bin/sh
case "$1 $2" in
  "version --template") printf "v3.19.0" ;;
  "status kuberay-operator") cat "$STATUS_JSON" ;;
  "get values") cat "$VALUES_JSON" ;;
  "show chart") cat "$3/Chart.yaml" ;;
  *) echo "$@" >> "$OTHER_CALLS"; echo "Error: looks like the repository cannot be reached" >&2; exit 1 ;;
esac
"""


def release_status(status="deployed", version=versions.KUBERAY_CHART_VERSION):
    return {
        "name": "kuberay-operator",
        "namespace": NS,
        "version": 3,
        "info": {"status": status, "last_deployed": "2026-12-01T20:00:00Z", "description": "Upgrade complete"},
        "chart": {"metadata": {"apiVersion": "v2", "name": "kuberay-operator", "version": version, "type": "application"}},
        "manifest": "",
    }


@pytest.fixture
def fake_helm(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "helm").write_text(FAKE_HELM)
    (bin_dir / "helm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("STATUS_JSON", str(tmp_path / "status.json"))
    monkeypatch.setenv("VALUES_JSON", str(tmp_path / "values.json"))
    monkeypatch.setenv("OTHER_CALLS", str(tmp_path / "other-calls"))

    def deployed(status="deployed", version=versions.KUBERAY_CHART_VERSION, values=None):
        (tmp_path / "status.json").write_text(json.dumps(release_status(status, version)))
        (tmp_path / "values.json").write_text(json.dumps(operator.load_values() if values is None else values))

    return deployed


def test_the_same_chart_and_values_deployed_means_nothing_to_do_without_the_repository(tmp_path, fake, fake_helm):
    cluster, kubeconfig = fake
    fake_helm()
    assert operator.install(cfg_for(tmp_path, kubeconfig)) is False
    assert not (tmp_path / "other-calls").exists(), "no chart was fetched, nothing installed"
    assert cluster.requests == [], "no Kubernetes call either: no CRD applied, no lock taken"


SHARED_CHART = PROJECT_ROOT.parent / "shared" / "fixtures" / f"kuberay-operator-{versions.KUBERAY_CHART_VERSION}"


@pytest.mark.skipif(not (SHARED_CHART / "crds").is_dir(), reason=f"the shared chart fixture {SHARED_CHART} is absent")
def test_a_chart_version_change_applies_every_crd_server_side_before_helm(tmp_path, fake, fake_helm):
    """Release 1.6.1 deployed, the 1.7.0 chart wanted: its four CRDs applied as aks-ray, then helm with --skip-crds."""
    cluster, kubeconfig = fake
    fake_helm(version="1.6.1")
    cfg = cfg_for(tmp_path, kubeconfig, AKS_RAY_KUBERAY_CHART=str(SHARED_CHART))
    with pytest.raises(OperationalError):  # this helm cannot install: the upgrade it was asked for is written down
        operator.install(cfg)
    applied = [(name, content_type) for plural, name, content_type, _ in cluster.patches if plural == "customresourcedefinitions"]
    expected = sorted(f"{plural}.ray.io" for plural in ("rayclusters", "raycronjobs", "rayjobs", "rayservices"))
    assert applied == [(name, "application/apply-patch+yaml") for name in expected]
    assert cluster.crds["rayjobs.ray.io"]["spec"]["names"]["kind"] == "RayJob"
    upgrade = (tmp_path / "other-calls").read_text()
    assert upgrade.startswith("upgrade kuberay-operator") and "--skip-crds" in upgrade
    crd_done = max(i for i, (_, path) in enumerate(cluster.requests) if "customresourcedefinitions" in path)
    assert crd_done < next(i for i, (method, path) in enumerate(cluster.requests) if method == "DELETE" and "leases" in path)


@pytest.mark.parametrize(
    ("release", "version", "applies"),
    [
        (None, "1.7.0", True),
        (operator.Release("deployed", "kuberay-operator", "1.6.1", {}), "1.7.0", True),
        (operator.Release("deployed", "kuberay-operator", "1.7.0", {"other": "values"}), "1.7.0", False),
        (operator.Release("failed", "kuberay-operator", "1.7.0", {}), "1.7.0", False),
        (operator.Release("deployed", "another-chart", "1.7.0", {}), "1.7.0", True),
    ],
    ids=["first-install", "version-change", "values-only", "failed-same-version", "another-chart"],
)
def test_crds_are_applied_on_a_first_install_and_a_version_change_only(release, version, applies):
    assert operator.crds_change(release, version) is applies


@pytest.mark.parametrize("status", ["pending-install", "pending-upgrade", "pending-rollback"])
def test_a_pending_release_is_never_undone(tmp_path, fake, fake_helm, status):
    cluster, kubeconfig = fake
    fake_helm(status=status)
    with pytest.raises(OperationalError) as info:
        operator.install(cfg_for(tmp_path, kubeconfig))
    assert "never uninstalls or rolls back" in str(info.value)
    calls = (tmp_path / "other-calls").read_text() if (tmp_path / "other-calls").exists() else ""
    assert "uninstall" not in calls and "rollback" not in calls
    assert not cluster.leases, "the lock is released on the way out"


@pytest.mark.parametrize(
    ("release", "wanted", "values", "decision"),
    [
        (None, "1.7.0", {}, operator.INSTALL),
        (operator.Release("deployed", "kuberay-operator", "1.7.0", {"a": 1}), "1.7.0", {"a": 1}, operator.UNCHANGED),
        (operator.Release("deployed", "kuberay-operator", "1.6.1", {"a": 1}), "1.7.0", {"a": 1}, operator.INSTALL),
        (operator.Release("deployed", "kuberay-operator", "1.7.0", {"a": 2}), "1.7.0", {"a": 1}, operator.INSTALL),
        (operator.Release("failed", "kuberay-operator", "1.7.0", {"a": 1}), "1.7.0", {"a": 1}, operator.INSTALL),
        (operator.Release("pending-upgrade", "kuberay-operator", "1.7.0", {"a": 1}), "1.7.0", {"a": 1}, operator.BUSY),
        (operator.Release("uninstalling", "kuberay-operator", "1.7.0", {}), "1.7.0", {}, operator.BUSY),
        (operator.Release("deployed", "kuberay-operator", "1.7.0", {}), None, {}, operator.INSTALL),
    ],
    ids=["none", "same", "other-version", "other-values", "failed", "pending", "uninstalling", "tgz-unknown-version"],
)
def test_decide(release, wanted, values, decision):
    assert operator.decide(release, wanted, values) == decision
