"""Every version of an external thing, declared once.

`--help`, the README's versions table and the pins in pyproject.toml are checked
against this module by the tests, so a bump happens here and nowhere else.
"""

RAY_VERSION = "2.60.0"
TORCH_VERSION = "2.13.0"
PYTHON_VERSION = "3.11"

KUBERAY_CHART_VERSION = "1.7.0"
KUBERAY_HELM_REPO = "https://ray-project.github.io/kuberay-helm/"
KUBERAY_CHART_NAME = "kuberay-operator"

# A CPU image of the Ray version the local target tests with.
RAY_IMAGE = f"rayproject/ray:{RAY_VERSION}-py311-cpu"

# AKS Kubernetes minor version; AKS picks the newest supported patch. 1.36 is in AKS
# standard support until June 2027, and KubeRay 1.7.0 is built against the 1.36 client
# libraries (k8s.io/client-go v0.36.0 in its ray-operator/go.mod). Preflight asks the
# region which versions it offers, so a version Azure stopped offering fails before a plan.
KUBERNETES_VERSION = "1.36"

# End of AKS community (standard) support per minor version, from the AKS Kubernetes
# release calendar (learn.microsoft.com/azure/aks/supported-kubernetes-versions), as of
# December 2026: preflight warns within END_OF_LIFE_WARNING_DAYS of these dates. The
# month is what the calendar gives; the last day of it is used.
KUBERNETES_END_OF_LIFE = {
    "1.33": "2026-07-31",
    "1.34": "2026-11-30",
    "1.35": "2027-03-31",
    "1.36": "2027-06-30",
    "1.37": "2027-10-31",
}
END_OF_LIFE_WARNING_DAYS = 60

# Terraform: the newest 1.x release line (1.15; 1.16 had release candidates when this was
# pinned). setup-terraform installs exactly this version in the action.
TERRAFORM_VERSION = "1.15.9"
# hashicorp/setup-terraform v4.0.1, by commit (the action installs TERRAFORM_VERSION with it).
SETUP_TERRAFORM_ACTION = "hashicorp/setup-terraform@dfe3c3f87815947d99a8997f908cb6525fc44e9e"
SETUP_TERRAFORM_TAG = "v4.0.1"
# The newest 4.x; 5.x makes node_provisioning_profile required on the cluster.
AZURERM_PROVIDER_VERSION = "4.81.0"
# The provider's source for the schema check in tests/terraform: the Go module at the
# commit of the v4.81.0 tag (its go.mod has no /v4 suffix, so the tag is not a module
# version; the commit is reachable as this pseudo-version).
AZURERM_PROVIDER_MODULE = "github.com/hashicorp/terraform-provider-azurerm"
AZURERM_PROVIDER_PSEUDO_VERSION = "v1.44.1-0.20260714131808-5782a75422c6"

# checkov scans terraform/ in the tests; it lives in its own venv (make checkov-install)
# because its pins clash with ray's. A test tool, so not in versions_table().
CHECKOV_VERSION = "3.3.30"
# uv writes the action's hash-locked requirements (scripts/tools/lock_requirements.py).
# A build tool, so not in versions_table().
UV_VERSION = "0.13.8"
# Where no Terraform CLI is installed, `make terraform-install` builds OpenTofu from its
# Go module for tests/terraform's fmt check (Terraform's own module cannot be built:
# its nested backend modules are missing from the module zip). A test tool too.
OPENTOFU_VERSION = "1.12.6"


def versions_table() -> list[tuple[str, str]]:
    """(component, version) rows for --help and the README."""
    return [
        ("ray[default,train] (local target, training image)", RAY_VERSION),
        ("torch (local target, training image)", TORCH_VERSION),
        ("KubeRay operator Helm chart", KUBERAY_CHART_VERSION),
        ("Ray image", RAY_IMAGE),
        ("Kubernetes on AKS (default)", KUBERNETES_VERSION),
        ("Terraform CLI", TERRAFORM_VERSION),
        ("hashicorp/setup-terraform (installs it in the action)", SETUP_TERRAFORM_TAG),
        ("hashicorp/azurerm provider", AZURERM_PROVIDER_VERSION),
    ]
