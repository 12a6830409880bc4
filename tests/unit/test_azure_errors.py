"""The Azure failures users meet, turned into a message with its fix."""

from __future__ import annotations

import pytest

from aks_ray import azure_errors
from aks_ray.errors import OperationalError, UserError

SUB = "/subscriptions/33333333-3333-3333-3333-333333333333"


def denied(action: str, scope: str) -> str:
    return f"The client 'x' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid."


@pytest.mark.parametrize(
    ("text", "kind", "in_message", "in_fix"),
    [
        pytest.param(
            denied("Microsoft.Compute/locations/usages/read", SUB),
            UserError,
            "Microsoft.Compute/locations/usages/read",
            f'--role "Reader" --scope {SUB}',
            id="403-usages-reader",
        ),
        pytest.param(
            denied("Microsoft.Authorization/roleAssignments/write", f"{SUB}/resourceGroups/rg"),
            UserError,
            "roleAssignments/write",
            '--role "Role Based Access Control Administrator"',
            id="403-role-assignment",
        ),
        pytest.param(
            denied("Microsoft.ContainerService/managedClusters/write", f"{SUB}/resourceGroups/rg"),
            UserError,
            "(403)",
            '--role "Contributor"',
            id="403-cluster-write-contributor",
        ),
        pytest.param(
            "AADSTS700024: Client assertion is not within its valid time range. Current time: ..., assertion valid from ...",
            UserError,
            "expired",
            "re-run the job",
            id="expired-assertion",
        ),
        pytest.param(
            "AADSTS700213: No matching federated identity record found for presented assertion subject 'repo:o/r:environment:prod'",
            UserError,
            "AADSTS700213",
            "environment",
            id="subject-mismatch",
        ),
        pytest.param(
            "(ExpiredAuthenticationToken) The access token expiry UTC time '1/1/2030' is earlier than current UTC time",
            OperationalError,
            "expired",
            "re-run the job",
            id="expired-arm-token",
        ),
        pytest.param(
            "(MissingSubscriptionRegistration) The subscription is not registered to use namespace 'Microsoft.ContainerService'.",
            UserError,
            "Microsoft.ContainerService",
            "az provider register --namespace Microsoft.ContainerService",
            id="provider-not-registered",
        ),
        pytest.param(
            # What terraform init prints when the azurerm backend looks up the account's keys.
            "Error: Failed to get existing workspaces: retrieving Storage Account (Subscription: x\nResource Group Name: tfstate-rg\n"
            "Storage Account Name: yourtfstate): listing Keys: unexpected status 403 (403 Forbidden) with error: AuthorizationFailed: "
            + denied(
                "Microsoft.Storage/storageAccounts/listKeys/action",
                f"{SUB}/resourceGroups/tfstate-rg/providers/Microsoft.Storage/storageAccounts/yourtfstate",
            ),
            UserError,
            "access keys",
            "use_azuread_auth=true",
            id="state-list-keys-is-not-a-role-problem",
        ),
        pytest.param(
            "Error: Failed to get existing workspaces: containers.Client#ListBlobs: Failure responding to request: StatusCode=403 -- "
            'Original Error: autorest/azure: Service returned an error. Status=403 Code="KeyBasedAuthenticationNotPermitted" '
            'Message="Key based authentication is not permitted on this storage account."',
            UserError,
            "access keys",
            "Storage Blob Data Contributor",
            id="state-shared-key-disabled",
        ),
        pytest.param(
            "Error: Failed to get existing workspaces: executing request: unexpected status 403 (403 This request is not authorized "
            "to perform this operation using this permission.) with AuthorizationPermissionMismatch",
            UserError,
            "no data role",
            "Storage Blob Data Reader",
            id="state-no-data-role",
        ),
        pytest.param(
            denied("Microsoft.ContainerService/locations/kubernetesVersions/read", SUB),
            UserError,
            "kubernetesVersions/read",
            '--role "Reader"',
            id="403-kubernetes-versions-reader",
        ),
    ],
)
def test_known_failures_get_their_fix(text, kind, in_message, in_fix):
    error = azure_errors.explain_text(text, doing="doing a thing", assignee="22222222-2222-2222-2222-222222222222")
    assert type(error) is kind
    assert error.message.startswith("doing a thing: ")
    assert in_message in error.message
    assert in_fix in error.fix


def test_unknown_text_is_not_explained():
    assert azure_errors.explain_text("Error: something else entirely", doing="x") is None


def test_without_a_client_id_the_command_has_a_placeholder():
    error = azure_errors.explain_text(
        f"does not have authorization to perform action 'Microsoft.Compute/skus/read' over scope '{SUB}'", doing="x"
    )
    assert "--assignee <client-id>" in error.fix


def test_a_failed_sign_in_outside_actions_says_az_login():
    from azure.core.exceptions import ClientAuthenticationError

    error = azure_errors.explain(
        ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token from the included credentials."), doing="x"
    )
    assert type(error) is OperationalError
    assert "az login" in error.fix
