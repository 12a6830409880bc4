"""The project's real exec credential plugin, with GitHub and Azure faked at the HTTP boundary.

A kubeconfig's `user.exec` runs this file the way the action's kubeconfig runs
`python -m aks_ray.exec_plugin`: exec_plugin.main does the whole
sign-in (GitHub OIDC token, then Azure AD's client-assertion exchange) through
azure_http_fakes' transport instead of the network. The environment says what
the fake cloud does:

    FAKE_GITHUB_JWT, FAKE_AKS_TOKEN   the tokens GitHub and Azure AD mint
    FAKE_AKS_TOKEN_LIFETIME           seconds the AKS token lives (1: renew at once)
    FAKE_PLUGIN_FAIL_FROM_CALL        from this call on (counted in FAKE_PLUGIN_STATE), Azure AD
                                      refuses the exchange, after GitHub minted its token
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

import azure_http_fakes as fakes

from aks_ray import exec_plugin


def main() -> int:
    fakes.GITHUB_JWT = os.environ["FAKE_GITHUB_JWT"]
    fakes.AKS_TOKEN = os.environ["FAKE_AKS_TOKEN"]
    state = Path(os.environ["FAKE_PLUGIN_STATE"])
    call = (int(state.read_text()) if state.is_file() else 0) + 1
    state.write_text(str(call))
    cloud = fakes.FakeAzure(aks_token_lifetime=int(os.environ.get("FAKE_AKS_TOKEN_LIFETIME", "3600")))
    if call >= int(os.environ.get("FAKE_PLUGIN_FAIL_FROM_CALL", "1000000")):
        refusal = "AADSTS70021: No matching federated identity record found for presented assertion."
        cloud.failures["aad_token"] = (400, {"error": "invalid_client", "error_description": refusal})
    return exec_plugin.main(sys.argv[1:], transport=cloud.transport())


if __name__ == "__main__":
    sys.exit(main())
