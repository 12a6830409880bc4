# Versions, provider and state backend. The provider pin is declared once more
# in scripts/aks_ray/versions.py (AZURERM_PROVIDER_VERSION); a test keeps the two equal.
terraform {
  # aks-ray runs with 1.15 (TERRAFORM_VERSION in versions.py; the action installs it).
  required_version = ">= 1.6.0, < 2.0.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "= 4.81.0"
    }
  }

  # Remote state for real use: `terraform init -backend-config=...` supplies the
  # storage account, container and key (aks-ray passes --tf-backend-config).
  # For a trial with local state, aks-ray writes a *_override.tf selecting the
  # local backend; see README, "Azure".
  backend "azurerm" {}
}

provider "azurerm" {
  # The subscription comes from ARM_SUBSCRIPTION_ID; authentication from
  # ARM_USE_OIDC and ARM_CLIENT_ID/ARM_TENANT_ID in GitHub Actions, or the
  # Azure CLI login elsewhere. use_cli is set here, not by ARM_USE_CLI: the
  # provider's use_cli has a schema default of true, which wins over that
  # variable, so ARM_USE_CLI=false is ignored.
  use_cli = var.use_azure_cli

  features {
    resource_group {
      # The AKS-managed node resource group lives outside this resource group,
      # so deleting this one never takes unknown resources with it.
      prevent_deletion_if_contains_resources = true
    }
  }

  # Registering resource providers needs subscription-wide rights that the
  # least-privilege identity in the README does not have; the README registers
  # the three this configuration uses once, by hand.
  resource_provider_registrations = "none"
}
