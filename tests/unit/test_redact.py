"""The one redaction filter (redact.py), where it is applied, and the exec plugin's mask pipe."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time

import pytest

from aks_ray import config, gha, maskpipe, proc, redact

JWT = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJyZXBvOm9jdG8vcmVwbzpwdWxsX3JlcXVlc3QifQ.c2lnbmF0dXJl"


@pytest.fixture(autouse=True)
def clean_state():
    redact.forget_all()
    gha.use_mask_sink(None)
    yield
    redact.forget_all()
    gha.use_mask_sink(None)
    gha.use_workflow_commands(True)


CASES = {
    "jwt": (f"token refresh failed: {JWT} (retrying)", "token refresh failed: <redacted> (retrying)"),
    "add-mask-inside-a-line": (f"ERROR exec: returned 1. ::add-mask::{JWT}", "ERROR exec: returned 1. ::add-mask::<redacted>"),
    "add-mask-of-an-opaque-value": ("stderr: ::add-mask::opaque-value-1234", "stderr: ::add-mask::<redacted>"),
    "url-password": (
        "helm repo add x https://bot:hunter2secret@charts.example/x",
        "helm repo add x https://bot:<redacted>@charts.example/x",
    ),
    "url-token-as-user": (
        "git clone https://ghp_0123456789abcdefghij@github.example/o/r",
        "git clone https://<redacted>@github.example/o/r",
    ),
    "bearer": ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer <redacted>"),
    "basic": ("authorization: basic dXNlcjpwYXNz", "authorization: basic <redacted>"),
    "token-flag-equals": ("kubectl get pods --token=s3cr3t-value", "kubectl get pods --token=<redacted>"),
    "password-flag-space": ("helm pull --password hunter2 --username bot", "helm pull --password <redacted> --username bot"),
    "env-style-secret": ("ARM_CLIENT_SECRET=abc123 ARM_CLIENT_ID=c1", "ARM_CLIENT_SECRET=<redacted> ARM_CLIENT_ID=c1"),
    "json-token": ('{"status": {"token": "opaque-aks-token"}}', '{"status": {"token": "<redacted>"}}'),
    "yaml-password": ("  password: hunter2", "  password: <redacted>"),
    "query-secret": ("GET /cb?client_secret=k3y-abc&state=1", "GET /cb?client_secret=<redacted>&state=1"),
}


@pytest.mark.parametrize(("before", "after"), CASES.values(), ids=CASES.keys())
def test_text_redacts(before, after):
    assert redact.text(before) == after


@pytest.mark.parametrize(
    "line",
    [
        "RayJob aks-ray/aks-ray-1 Running: job RUNNING",
        "authOptions mode: token",
        "give the job `permissions: id-token: write` in the workflow",
        "token: required",
        "aks-ray credentials: getting an Azure AD token for the AKS API failed",
        "$ helm upgrade --install kuberay-operator /charts/kuberay --namespace kuberay-system",
        "--keep-cluster --tenant-id 11111111-1111-1111-1111-111111111111",
        "https://ray-project.github.io/kuberay-helm/",
        "epoch 2/3 loss 0.0412 accuracy 98.71%",
    ],
)
def test_text_leaves_ordinary_lines_alone(line):
    assert redact.text(line) == line


def test_remembered_values_are_redacted_everywhere():
    redact.remember(["opaque-not-a-jwt-value", "short"])
    assert redact.text("got opaque-not-a-jwt-value back") == "got <redacted> back"
    assert redact.text("a short word") == "a short word", "values too short to replace safely are not remembered"


def test_secret_named_environment_values_are_found():
    environ = {"GITHUB_TOKEN": "ghs_x", "ARM_CLIENT_SECRET": "s", "RAY_AUTH_TOKEN_PATH": "/tmp/t", "HOME": "/home/x"}
    assert sorted(config.secret_values(environ)) == ["ghs_x", "s"]


def test_objects_lose_credential_values_tokens_and_managed_fields():
    pod = {
        "metadata": {"name": "p", "managedFields": [{"manager": "x"}], "annotations": {"note": f"minted {JWT}"}},
        "spec": {"containers": [{"env": [{"name": "HF_TOKEN", "value": "hf_abc"}, {"name": "EPOCHS", "value": "3"}]}]},
    }
    out = redact.object(pod)
    assert "managedFields" not in out["metadata"]
    assert out["metadata"]["annotations"]["note"] == "minted <redacted>"
    assert out["spec"]["containers"][0]["env"] == [{"name": "HF_TOKEN", "value": "<redacted>"}, {"name": "EPOCHS", "value": "3"}]
    assert pod["metadata"]["managedFields"], "the input is not changed"


def test_every_log_record_is_redacted_whoever_logs_it(capsys):
    from aks_ray import commandline

    commandline.setup_logging()
    try:
        logging.getLogger("kubernetes.config").error("exec: process returned 1. ::add-mask::%s", JWT)
        try:
            raise RuntimeError(f"refused {JWT}")
        except RuntimeError:
            logging.getLogger("pyhelm3").exception("helm failed")
    finally:
        logging.getLogger().handlers.clear()
    err = capsys.readouterr().err
    assert JWT not in err
    assert "::add-mask::<redacted>" in err and "RuntimeError: refused <redacted>" in err


def test_annotations_are_redacted_but_masks_are_not(capsys):
    gha.use_workflow_commands(True)
    gha.add_mask("opaque-aks-token-123")
    gha.error(f"helm failed: token opaque-aks-token-123 and {JWT}")
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "::add-mask::opaque-aks-token-123", "the mask itself reaches the runner whole"
    assert "opaque-aks-token-123" not in err[1] and JWT not in err[1]


def test_captured_output_is_redacted_and_a_childs_mask_is_passed_on(capsys):
    script = f"print('::add-mask::child-secret-value-1'); print('using child-secret-value-1'); print('jwt {JWT}')"
    result = proc.run([sys.executable, "-c", script], timeout=30)
    assert "child-secret-value-1" not in result.output and JWT not in result.output
    err = capsys.readouterr().err.splitlines()
    assert "::add-mask::child-secret-value-1" in err, "passed on as a command of its own line"
    assert [line for line in err if "child-secret-value-1" in line] == ["::add-mask::child-secret-value-1"]


def test_masks_sent_to_the_pipe_reach_the_steps_stderr(tmp_path):
    """The relay in a step process; the plugin side in another process, as helm or the Python client would run it."""
    step = (
        "import os, sys, time; from aks_ray import gha, maskpipe; gha.use_workflow_commands(True);"
        "path = maskpipe.start_relay(None, os.environ); print(path, flush=True); time.sleep(3)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen([sys.executable, "-c", step], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as relay:
        path = relay.stdout.readline().strip()
        plugin = subprocess.run(
            [sys.executable, "-c", f"from aks_ray import maskpipe; import sys; sys.exit(0 if maskpipe.send({path!r}, {JWT!r}) else 1)"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert plugin.returncode == 0, plugin.stderr
        assert plugin.stderr == "", "nothing on the plugin's own stderr"
        _, err = relay.communicate(timeout=30)
    assert f"::add-mask::{JWT}" in err.splitlines()


def test_without_a_reader_the_plugin_falls_back_to_its_stderr(tmp_path, capsys):
    fifo = tmp_path / "masks.fifo"
    os.mkfifo(fifo)
    assert maskpipe.send(str(fifo), "x") is False, "nobody reads: the send fails at once instead of hanging"
    assert maskpipe.send(None, "x") is False
    assert maskpipe.send(str(tmp_path / "plain-file"), "x") is False
    gha.use_workflow_commands(True)
    gha.use_mask_sink(lambda value: maskpipe.send(str(fifo), value))
    gha.add_mask("fallback-secret-1")
    assert capsys.readouterr().err.splitlines() == ["::add-mask::fallback-secret-1"]


def test_the_relay_keeps_reading_across_writers(tmp_path, capsys):
    gha.use_workflow_commands(True)
    environ: dict[str, str] = {}
    maskpipe._relay = None
    path = maskpipe.start_relay(tmp_path, environ)
    assert environ[maskpipe.MASK_PIPE_ENV] == path and oct(os.stat(path).st_mode & 0o777) == "0o600"
    for index in range(3):
        assert maskpipe.send(path, f"minted-token-number-{index}")
    deadline = time.monotonic() + 10
    seen: list[str] = []
    while time.monotonic() < deadline and len(seen) < 3:
        seen += [line for line in capsys.readouterr().err.splitlines() if line.startswith("::add-mask::")]
        time.sleep(0.05)
    assert seen == [f"::add-mask::minted-token-number-{i}" for i in range(3)]
    assert threading.active_count() >= 2
