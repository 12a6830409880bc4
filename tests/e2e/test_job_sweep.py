"""`aks-ray job sweep`, and the sweep every `aks-ray cleanup` ends with, against a real API server (issue 13, point 7).

What no KubeRay 1.7 deletion rule reaches (a STOPPED job, a queued run, a RayJob that never
ended, a ConfigMap whose runner was lost before its RayJob existed) is found by its
aks-ray.io/expires-at annotation. Each run here is what `job submit` creates (its
NetworkPolicy, ConfigMap and RayJob, rendered by rayjob.render_run and owned as submit
owns them), its RayJob suspended as a queued run's is, so that no pod starts: the case is
API calls only, quick enough for the core set. Runs "created" in the past or future are
rendered with that creation time, which is all their expiry depends on.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import uuid

import pytest

from aks_ray import config, job, kube, kube_sweep, operator, rayjob, versions
from aks_ray.config import PROJECT_ROOT

SHARED_CHART = PROJECT_ROOT.parent / "shared" / "fixtures" / f"kuberay-operator-{versions.KUBERAY_CHART_VERSION}"
RUN_KINDS = kube.RUN_OBJECT_KINDS
DAY = 24 * 3600

pytestmark = [
    pytest.mark.kind,
    pytest.mark.skipif(not (SHARED_CHART / "crds").is_dir(), reason=f"the shared chart fixture {SHARED_CHART} is absent"),
]


def environment(cluster, namespace: str, tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AKS_RAY_", "GITHUB_"))}
    env.update(cluster.kube_env())
    env.update({"AKS_RAY_TARGET": "kubeconfig", "AKS_RAY_NAMESPACE": namespace, "AKS_RAY_OUTPUT_DIR": str(tmp_path / "out")})
    return env


@pytest.fixture
def api(cluster, tmp_path):
    """The package's own client, with the chart's CRDs on the cluster (what `operator install` applies first)."""
    connected = kube.connect(config.load({}, environment(cluster, "default", tmp_path)))
    operator.apply_crds(connected, operator.chart_crds(SHARED_CHART))
    yield connected
    connected.api_client.close()


def create_run(api, cfg, created_at: float, annotated: bool = True) -> str:
    """A run's three objects as submit creates them, as if created at `created_at`; its RayJob suspended. Returns its name."""
    name = f"sweep-{uuid.uuid4().hex[:6]}"
    run = rayjob.identity(cfg, name)
    objects = {obj["kind"]: obj for obj in rayjob.render_run(cfg, run, now=created_at) if obj["kind"] in RUN_KINDS}
    rayjob.queue(objects["RayJob"], "no-such-queue")  # suspended: KubeRay starts no cluster for it
    for obj in objects.values():
        if not annotated:  # as an aks-ray from before the annotation made it
            del obj["metadata"]["annotations"][rayjob.EXPIRES_AT_ANNOTATION]
        kube.create(api, obj)
    created_job = kube.get_rayjob(api, cfg.kube.namespace, name)
    job.own_run_objects(api, created_job, (objects["ConfigMap"], objects["NetworkPolicy"]))
    return name


def left_of(api, namespace: str, name: str) -> dict[str, list[str]]:
    """What of run `name` is still in `namespace`, by kind (objects being deleted included)."""
    selector = f"aks-ray.io/run={name}"
    return {kind: [o["metadata"]["name"] for o in kube.list_run_objects(api, namespace, kind, selector)] for kind in RUN_KINDS}


def gone(api, namespace: str, name: str, within: float = 60.0) -> bool:
    """True once nothing of run `name` is left: the ConfigMap and NetworkPolicy may go a moment after the RayJob."""
    deadline = time.monotonic() + within
    while any(left_of(api, namespace, name).values()):
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


def aks_ray(args, env):
    result = subprocess.run(
        [sys.executable, "-m", "aks_ray.cli", *args], env=env, capture_output=True, text=True, timeout=600, check=False, cwd=PROJECT_ROOT
    )
    sys.stderr.write(result.stderr[-10000:])
    return result


def test_job_sweep_lists_then_deletes_only_the_expired_run(api, cluster, namespace, tmp_path):
    env = environment(cluster, namespace, tmp_path)
    cfg = config.load({}, env)
    now = time.time()
    expired = create_run(api, cfg, now - 2 * DAY)  # a run whose every deadline and TTL passed a day ago
    live = create_run(api, cfg, now)  # a run going on now
    unannotated = create_run(api, cfg, now - 2 * DAY, annotated=False)  # an older aks-ray's: no expiry to go by

    listed = aks_ray(["job", "sweep"], env)
    assert listed.returncode == 0, listed.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line for line in listed.stdout.splitlines() if line.startswith("| ") and "`" in line}
    for kind, names in left_of(api, namespace, expired).items():
        (name,) = names
        assert "expired: would delete" in rows[f"{kind} `{name}`"], listed.stdout
    assert all(f"`{live}`" not in row or "| kept: expires in" in row for row in rows.values()), listed.stdout
    assert all(f"`{unannotated}`" not in row or "skipped: no aks-ray.io/expires-at" in row for row in rows.values()), listed.stdout
    assert "run `aks-ray job sweep --yes` to delete them" in listed.stdout
    assert all(left_of(api, namespace, expired).values()), "listing alone deleted something"

    swept = aks_ray(["job", "sweep", "--yes"], env)
    assert swept.returncode == 0, swept.stderr[-3000:]
    assert gone(api, namespace, expired), f"the expired run is still there: {left_of(api, namespace, expired)}"
    for kept in (live, unannotated):
        assert all(len(names) == 1 for names in left_of(api, namespace, kept).values()), (kept, left_of(api, namespace, kept))
    assert f"deleted RayJob {namespace}/{expired}" in swept.stderr


def test_job_sweep_refuses_the_local_target(cluster, namespace, tmp_path):
    result = aks_ray(["job", "sweep", "--target", "local"], environment(cluster, namespace, tmp_path))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--target kubeconfig" in result.stderr


def test_cleanup_also_removes_an_expired_lost_run_and_nothing_live(api, cluster, namespace, tmp_path):
    env = environment(cluster, namespace, tmp_path)
    cfg = config.load({}, env)
    now = time.time()
    mine, lost, other = create_run(api, cfg, now), create_run(api, cfg, now - 2 * DAY), create_run(api, cfg, now)

    result = aks_ray(["cleanup", "--job-name", mine], env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert gone(api, namespace, mine) and gone(api, namespace, lost), (left_of(api, namespace, mine), left_of(api, namespace, lost))
    assert all(len(names) == 1 for names in left_of(api, namespace, other).values()), "another run's live objects were touched"
    assert f"expired objects of runs whose cleanup never ran ({lost})" in result.stderr


def test_a_namespace_a_lost_run_created_goes_once_nothing_is_left_in_it(api, cluster, tmp_path):
    """The sweep judged a day ahead, so the namespace is old enough and the first run expired; a later run keeps it."""
    name = f"aks-ray-e2e-sweep-{uuid.uuid4().hex[:6]}"
    env = environment(cluster, name, tmp_path)
    cfg = config.load({}, env)
    now = time.time()
    creator = f"sweep-{uuid.uuid4().hex[:6]}"
    kube.ensure_namespace(api, rayjob.render_namespace(rayjob.identity(cfg, creator)))
    try:
        lost = create_run(api, cfg, now)
        later = create_run(api, cfg, now + 2 * DAY)
        # The namespace names a creator run of its own (its objects long gone, as after KubeRay's rules).
        a_day_ahead = dt.datetime.fromtimestamp(now + DAY, dt.timezone.utc)
        sweeping = config.load({"yes": "true"}, env)

        kube_sweep.sweep(sweeping, now=a_day_ahead)
        assert gone(api, name, lost)
        assert all(left_of(api, name, later).values()), "a run within its time was deleted"
        assert api.core.read_namespace(name).status.phase == "Active", "the namespace went while a run was in it"

        kube.delete_run_object(api, "RayJob", name, later)
        assert gone(api, name, later)
        kube_sweep.sweep(sweeping, now=a_day_ahead)
        found = kube.get_or_none("read namespace", lambda: api.core.read_namespace(name))
        assert found is None or found.status.phase == "Terminating", "an abandoned namespace a run created stayed"
    finally:
        kube.get_or_none("delete namespace", lambda: api.core.delete_namespace(name))
