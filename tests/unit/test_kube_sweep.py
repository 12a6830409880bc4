"""The expiry each run's objects carry (rayjob.expires_at) and how `job sweep` judges them (kube_sweep.judge).

The sweep's API calls run against a real API server in tests/e2e/test_job_sweep.py.
"""

from __future__ import annotations

import datetime as dt

import pytest

from aks_ray import cli, config, kube_sweep, rayjob
from aks_ray.errors import UserError

CREATED = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
HOUR = 3600


def make_cfg(tmp_path, **env):
    return config.load({}, {"AKS_RAY_OUTPUT_DIR": str(tmp_path / "out"), "AKS_RAY_TARGET": "kubeconfig", **env})


def expiry_of(cfg) -> dt.datetime:
    run = rayjob.identity(cfg, "aks-ray-42-abc123")
    objects = rayjob.render_run(cfg, run, now=CREATED.timestamp())
    stamps = {obj["kind"]: (obj["metadata"].get("annotations") or {}).get(rayjob.EXPIRES_AT_ANNOTATION) for obj in objects}
    # The run's own objects carry it; the namespace and its quota and limit range are not the run's.
    assert set(k for k, v in stamps.items() if v) == {"NetworkPolicy", "ConfigMap", "RayJob"}, stamps
    assert len({stamps["NetworkPolicy"], stamps["ConfigMap"], stamps["RayJob"]}) == 1
    return dt.datetime.fromisoformat(stamps["RayJob"].replace("Z", "+00:00"))


@pytest.mark.parametrize(
    ("env", "hours"),
    [
        # --timeout 1 h, then DeleteSelf at --lost-run-ttl (1 h) after the end, then 15 minutes for collect and cleanup.
        ({}, 1 + 1 + 0.25),
        ({"AKS_RAY_TIMEOUT": "3h", "AKS_RAY_LOST_RUN_TTL": "2h"}, 3 + 2 + 0.25),
        # With keep-cluster the RayJob goes half a lost-run-ttl after the kept cluster (4 h by default).
        ({"AKS_RAY_KEEP_CLUSTER": "true"}, 1 + 4 + 0.5 + 0.25),
        # A queued run may wait --queue-timeout (30 m by default) before its deadlines start.
        ({"AKS_RAY_QUEUE_NAME": "runs"}, 0.5 + 1 + 1 + 0.25),
    ],
)
def test_a_runs_objects_expire_once_every_deadline_and_rule_has_passed(tmp_path, env, hours):
    assert expiry_of(make_cfg(tmp_path, **env)) - CREATED == dt.timedelta(hours=hours)


def rayjob_with(annotations=None, deletion=False, run="run-a") -> dict:
    meta = {"name": run, "labels": {"aks-ray.io/run": run}, "annotations": annotations or {}}
    if deletion:
        meta["deletionTimestamp"] = "2030-06-01T11:00:00Z"
    return {"metadata": meta}


def test_judge_deletes_only_what_has_expired_and_says_why_for_the_rest():
    stamp = rayjob.EXPIRES_AT_ANNOTATION
    objects = [
        rayjob_with({stamp: "2030-06-01T10:00:00Z"}, run="expired"),
        rayjob_with({stamp: "2030-06-01T12:00:00Z"}, run="expiring-now"),
        rayjob_with({stamp: "2030-06-01T13:30:00Z"}, run="live"),
        rayjob_with({}, run="older-aks-ray"),
        rayjob_with({stamp: "soon"}, run="garbled"),
        rayjob_with({stamp: "2030-06-01T10:00:00Z"}, deletion=True, run="going"),
    ]
    verdicts = {v.run: v for v in kube_sweep.judge("RayJob", objects, CREATED)}
    assert {run: v.action for run, v in verdicts.items()} == {
        "expired": "delete",
        "expiring-now": "delete",
        "live": "keep",
        "older-aks-ray": "skip",
        "garbled": "skip",
        "going": "skip",
    }
    assert verdicts["expired"].why == "expired 2.0 h ago"
    assert verdicts["live"].why == "expires in 1.5 h"
    assert "aks-ray cleanup --job-name older-aks-ray" in verdicts["older-aks-ray"].why
    assert "'soon' is not an RFC 3339 time" in verdicts["garbled"].why
    assert verdicts["going"].why == "already being deleted"


def test_the_table_names_each_object_and_how_to_delete_what_expired():
    stamp = rayjob.EXPIRES_AT_ANNOTATION
    verdicts = kube_sweep.judge("ConfigMap", [rayjob_with({stamp: "2030-06-01T10:00:00Z"}, run="lost")], CREATED)
    listed = kube_sweep.markdown("aks-ray-pr", verdicts, deleting=False)
    assert "| ConfigMap `lost` | `lost` | 2030-06-01T10:00:00Z | expired: would delete: expired 2.0 h ago |" in listed
    assert "1 expired; run `aks-ray job sweep --yes` to delete them." in listed
    assert "🗑️ deleted" in kube_sweep.markdown("aks-ray-pr", verdicts, deleting=True)
    assert "No object of an aks-ray run" in kube_sweep.markdown("aks-ray-pr", [], deleting=True)


def test_job_sweep_is_a_command_with_namespace_and_yes(tmp_path):
    args = cli.build_parser().parse_args(["job", "sweep", "--namespace", "aks-ray-pr", "--yes"])
    assert args.command_object.function is kube_sweep.main
    flags = {k: v for k, v in vars(args).items() if k not in ("command", "action", "command_object")}
    cfg = config.load(flags, {"AKS_RAY_OUTPUT_DIR": str(tmp_path), "AKS_RAY_TARGET": "kubeconfig"})
    assert cfg.kube.namespace == "aks-ray-pr" and cfg.sweep.yes is True


def test_job_sweep_on_the_local_target_is_bad_input(tmp_path):
    with pytest.raises(UserError) as raised:
        kube_sweep.sweep(config.load({}, {"AKS_RAY_OUTPUT_DIR": str(tmp_path), "AKS_RAY_TARGET": "local"}))
    assert raised.value.exit_code == 2
    assert "--target kubeconfig" in raised.value.fix
