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

# AKS Kubernetes minor version; AKS picks the newest supported patch.
KUBERNETES_VERSION = "1.33"

TERRAFORM_VERSION = "1.11.4"
AZURERM_PROVIDER_VERSION = "4.16.0"

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
        ("Terraform CLI", TERRAFORM_VERSION),
        ("hashicorp/azurerm provider", AZURERM_PROVIDER_VERSION),
    ]
