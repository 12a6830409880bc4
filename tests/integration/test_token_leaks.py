"""No token reaches a step's output: the two leaks of issue 12, reproduced end to end.

1. A failing sign-in during a token refresh. The kubernetes Python client runs
   the exec plugin, captures its stderr and, when the plugin fails, logs it
   (`exec: process returned 1. <stderr>`). The plugin had already minted a
   GitHub OIDC token, and used to write `::add-mask::<token>` to that stderr.
2. A helm failure with the plugin's stderr inside: pyhelm3 puts helm's
   captured stderr (which carries the plugin's) into the exception text that
   operator.py turns into an `::error::`.

Each test runs a real `aks-ray` step as the action runs it (GITHUB_ACTIONS=true)
in a child process, against a fake API server on 127.0.0.1, with a kubeconfig
whose exec plugin is the project's own plugin code with GitHub and Azure faked
at the HTTP boundary (fake_exec_plugin.py). The step's whole output (what the
runner would show) may carry a token only as a whole-line `::add-mask::` command,
which the runner consumes, and must carry that mask for every token minted.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_kube import FakeCluster, serve

from aks_ray.config import PROJECT_ROOT

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
UNIT_DIR = HERE.parent / "unit"
sys.path.insert(0, str(UNIT_DIR))
import azure_http_fakes as fakes  # noqa: E402


def jwt(subject: str) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part({'sub': subject, 'aud': 'api://AzureADTokenExchange'})}.c2lnbmF0dXJlLWJ5dGVz"


GITHUB_JWT = jwt("repo:octo/aks-ray:pull_request")
AKS_TOKEN = jwt("aks-user")


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (helm only runs the exec plugin for an https server)."""
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1"]
    subprocess.run(
        [*request, "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def plugin_kubeconfig(path: Path, server: str, ca: Path | None = None) -> Path:
    plugin = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": sys.executable,
        "args": [str(HERE / "fake_exec_plugin.py"), "--azure-tenant-id", fakes.TENANT, "--azure-client-id", fakes.CLIENT],
        "interactiveMode": "Never",
        "provideClusterInfo": False,
    }
    cluster = {"server": server}
    if ca is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca.read_bytes()).decode()
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "aks", "cluster": cluster}],
                "users": [{"name": "aad", "user": {"exec": plugin}}],
                "contexts": [{"name": "aks", "context": {"cluster": "aks", "user": "aad"}}],
                "current-context": "aks",
            }
        )
    )
    return path


def run_step(tmp_path: Path, args: list[str], https: bool = False, **plugin_env: str) -> tuple[subprocess.CompletedProcess, int]:
    tls = self_signed(tmp_path) if https else None
    server, url = serve(FakeCluster(), tls)
    try:
        kubeconfig = plugin_kubeconfig(tmp_path / "kubeconfig", url, tls[0] if tls else None)
        state = tmp_path / "plugin-calls"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AKS_RAY_", "GITHUB_", "ACTIONS_"))},
            **fakes.actions_environ(tmp_path),
            "AKS_RAY_TARGET": "kubeconfig",
            "KUBECONFIG": str(kubeconfig),
            "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT / "scripts"), os.environ.get("PYTHONPATH", "")]),
            "FAKE_GITHUB_JWT": GITHUB_JWT,
            "FAKE_AKS_TOKEN": AKS_TOKEN,
            "FAKE_PLUGIN_STATE": str(state),
            **plugin_env,
        }
        (tmp_path / "runner-temp").mkdir(exist_ok=True)
        result = subprocess.run(
            [sys.executable, "-m", "aks_ray.cli", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    finally:
        server.shutdown()
        server.server_close()
    return result, int(state.read_text()) if state.is_file() else 0


def assert_tokens_only_in_masks(output: str, tokens: list[str]) -> None:
    for token in tokens:
        leaking = [line for line in output.splitlines() if token in line and line != f"::add-mask::{token}"]
        assert leaking == [], f"a token reached the step output outside a mask: {leaking[:3]}"
        assert f"::add-mask::{token}" in output.splitlines(), "the runner never got the mask of a minted token"
    # Nothing JWT-shaped at all, masked or not, outside the masks.
    for line in output.splitlines():
        if not line.startswith("::add-mask::"):
            assert "eyJ" not in line, line


def test_a_failing_sign_in_during_a_token_refresh_prints_no_token(tmp_path):
    # The first token lives 1 s (so the client renews it at the next request); every renewal fails at Azure AD.
    result, calls = run_step(
        tmp_path,
        ["cleanup", "--job-name", "aks-ray-leak-test"],
        FAKE_AKS_TOKEN_LIFETIME="1",
        FAKE_PLUGIN_FAIL_FROM_CALL="2",
    )
    output = result.stdout + result.stderr
    assert calls >= 2, f"the client renewed the token through the plugin (calls: {calls}); output:\n{output[-2000:]}"
    assert "AADSTS70021" in output, "the failing renewal is reported (the client logs the plugin's stderr)"
    assert_tokens_only_in_masks(output, [GITHUB_JWT, AKS_TOKEN])


def test_a_helm_failure_with_the_plugins_stderr_inside_prints_no_token(tmp_path, kuberay_chart, helm):
    env_path = f"{Path(helm).parent}{os.pathsep}{os.environ['PATH']}"
    result, calls = run_step(
        tmp_path,
        ["operator", "install", "--kuberay-chart", str(kuberay_chart)],
        https=True,
        FAKE_PLUGIN_FAIL_FROM_CALL="1",
        PATH=env_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-2000:]
    assert calls >= 1, f"helm ran the exec plugin; output:\n{output[-2000:]}"
    assert "::error title=aks-ray operator install failed::" in output, "the helm failure is an annotation"
    assert_tokens_only_in_masks(output, [GITHUB_JWT])
