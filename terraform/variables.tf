# Every input typed, described and validated. aks-ray fills them from its own
# options (--location, --ray-vm-size, ...) through a variables file; the
# defaults deploy a working cluster with no inputs at all.

variable "location" {
  type        = string
  description = "Azure region for the resource group and the cluster, such as eastus or westeurope."
  default     = "eastus"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{2,30}$", var.location))
    error_message = "The location must be an Azure region name in lowercase letters and digits, such as eastus or westeurope (run `az account list-locations -o table`)."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name: the resource group is <prefix>-rg and the cluster <prefix>-aks unless named explicitly."
  default     = "aksray"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,11}$", var.name_prefix))
    error_message = "The name prefix must be 2 to 12 lowercase letters and digits, starting with a letter."
  }
}

variable "resource_group_name" {
  type        = string
  description = "Name of the resource group to create; null means <name_prefix>-rg."
  default     = null

  validation {
    # The same pattern as RESOURCE_GROUP_PATTERN in scripts/aks_ray/config.py (a test keeps them equal).
    condition     = var.resource_group_name == null || can(regex("^[-\\w.()]{1,89}[-\\w()]$", var.resource_group_name))
    error_message = "The resource group name must be 1 to 90 letters, digits, '-', '_', '.' or parentheses, and must not end with '.'."
  }
}

variable "cluster_name" {
  type        = string
  description = "Name of the AKS cluster; null means <name_prefix>-aks."
  default     = null

  validation {
    # The same pattern as CLUSTER_NAME_PATTERN in scripts/aks_ray/config.py (a test keeps them equal).
    condition     = var.cluster_name == null || can(regex("^[A-Za-z0-9][-A-Za-z0-9_]{0,61}[A-Za-z0-9]$", var.cluster_name))
    error_message = "The cluster name must be 2 to 63 letters, digits, '-' or '_', starting and ending with a letter or digit."
  }
}

variable "kubernetes_version" {
  type        = string
  description = "Kubernetes version of the cluster and its pools: MAJOR.MINOR lets AKS pick the newest patch. Must be offered in the region (`az aks get-versions -l <location>`; aks-ray's preflight checks)."
  default     = "1.36"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+(\\.[0-9]+)?$", var.kubernetes_version))
    error_message = "The Kubernetes version must look like 1.36 or 1.36.2."
  }
}

variable "system_vm_size" {
  type        = string
  description = "VM size of the system node pool, which runs only critical add-ons (CoreDNS, metrics-server, konnectivity)."
  default     = "Standard_D2s_v5"

  validation {
    condition     = can(regex("^Standard_[A-Za-z0-9_]+$", var.system_vm_size))
    error_message = "The system VM size must be an Azure VM size such as Standard_D2s_v5."
  }
}

variable "system_node_count" {
  type        = number
  description = "Number of nodes in the system node pool."
  default     = 1

  validation {
    condition     = var.system_node_count >= 1 && var.system_node_count <= 100 && floor(var.system_node_count) == var.system_node_count
    error_message = "The system node count must be a whole number from 1 to 100."
  }
}

variable "ray_vm_size" {
  type        = string
  description = "VM size of the Ray node pool, where the Ray head and workers run."
  default     = "Standard_D4s_v5"

  validation {
    condition     = can(regex("^Standard_[A-Za-z0-9_]+$", var.ray_vm_size))
    error_message = "The Ray VM size must be an Azure VM size such as Standard_D4s_v5."
  }
}

variable "ray_node_count" {
  type        = number
  description = "Number of nodes in the Ray node pool when it does not autoscale (ray_autoscaling = null)."
  default     = 3

  validation {
    condition     = var.ray_node_count >= 1 && var.ray_node_count <= 100 && floor(var.ray_node_count) == var.ray_node_count
    error_message = "The Ray node count must be a whole number from 1 to 100."
  }
}

variable "ray_autoscaling" {
  type = object({
    min_nodes = number
    max_nodes = number
  })
  description = "Autoscale the Ray node pool between min_nodes and max_nodes; min_nodes = 0 lets an idle cluster cost only its system pool. null: a fixed ray_node_count."
  default     = null

  validation {
    condition = var.ray_autoscaling == null || try(
      var.ray_autoscaling.min_nodes >= 0 && var.ray_autoscaling.max_nodes >= 1 && var.ray_autoscaling.max_nodes <= 100 &&
      var.ray_autoscaling.min_nodes <= var.ray_autoscaling.max_nodes &&
      floor(var.ray_autoscaling.min_nodes) == var.ray_autoscaling.min_nodes && floor(var.ray_autoscaling.max_nodes) == var.ray_autoscaling.max_nodes,
      false
    )
    error_message = "Ray autoscaling needs whole numbers with 0 <= min_nodes <= max_nodes <= 100 and max_nodes >= 1."
  }
}

variable "ray_scale_down_mode" {
  type        = string
  description = "What happens to a Ray pool node the autoscaler (or a smaller ray_node_count) removes: Delete (the provider's default) deletes the VM, so the next scale-up boots a fresh node that pulls the Ray image again; Deallocate stops it and keeps its OS disk, so a restarted node still has the images it pulled, and the stopped node costs its OS disk's storage but no compute. Deallocate needs managed OS disks (the default Dsv5 sizes have no ephemeral ones) and no Spot nodes."
  default     = "Delete"

  validation {
    condition     = contains(["Delete", "Deallocate"], var.ray_scale_down_mode)
    error_message = "The Ray pool's scale-down mode must be Delete or Deallocate."
  }
}

variable "container_registry_name" {
  type        = string
  description = "Name of an Azure Container Registry (Basic SKU, admin user disabled) to create beside the cluster, with AcrPull for the cluster's kubelet identity, so the nodes pull the image built from manifests/Dockerfile without credentials; globally unique, 5 to 50 letters and digits. null: no registry."
  default     = null

  validation {
    condition     = var.container_registry_name == null || can(regex("^[a-zA-Z0-9]{5,50}$", var.container_registry_name))
    error_message = "The container registry name must be 5 to 50 letters and digits (no '-'), unique across Azure, or null for no registry."
  }
}

variable "sku_tier" {
  type        = string
  description = "AKS pricing tier: Free (no uptime SLA, fine for CI), Standard or Premium."
  default     = "Free"

  validation {
    condition     = contains(["Free", "Standard", "Premium"], var.sku_tier)
    error_message = "The SKU tier must be Free, Standard or Premium."
  }
}

variable "automatic_upgrade_channel" {
  type        = string
  description = "AKS automatic upgrade channel: patch keeps the pinned minor version on its newest patch; none turns automatic upgrades off."
  default     = "patch"

  validation {
    condition     = contains(["none", "patch", "stable", "rapid", "node-image"], var.automatic_upgrade_channel)
    error_message = "The automatic upgrade channel must be none, patch, stable, rapid or node-image."
  }
}

variable "api_server_authorized_ip_ranges" {
  type        = list(string)
  description = "CIDR ranges allowed to reach the Kubernetes API server; empty allows any address (GitHub-hosted runners have no fixed addresses)."
  default     = []

  validation {
    condition     = alltrue([for cidr in var.api_server_authorized_ip_ranges : can(cidrhost(cidr, 0))])
    error_message = "Each authorized IP range must be a CIDR block such as 203.0.113.0/24."
  }
}

variable "grant_deployer_cluster_admin" {
  type        = bool
  description = "Give the identity running Terraform (the cluster identity) the 'Azure Kubernetes Service RBAC Cluster Admin' role on the cluster, so that it can install KubeRay and run jobs itself (local accounts are disabled). Off unless asked for: name the identities that need it in cluster_admin_object_ids instead (README, 'Two identities')."
  default     = false
}

variable "use_azure_cli" {
  type        = bool
  description = "Let the provider sign in with the Azure CLI login; aks-ray sets false in GitHub Actions, where it signs in with OIDC only."
  default     = true
}

variable "cluster_admin_object_ids" {
  type        = list(string)
  description = "Object IDs of further users, groups or service principals given 'Azure Kubernetes Service RBAC Cluster Admin' on the cluster."
  default     = []

  validation {
    condition     = alltrue([for id in var.cluster_admin_object_ids : can(regex("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", id))])
    error_message = "Each cluster admin must be an object ID (a GUID such as 00000000-0000-0000-0000-000000000000)."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags on every resource."
  default     = {}

  validation {
    condition     = alltrue([for key, value in var.tags : length(key) <= 512 && length(value) <= 256 && !can(regex("[<>%&\\\\?/]", key))])
    error_message = "Tag names must be at most 512 characters without < > % & \\ ? or /, and tag values at most 256 characters."
  }
}

variable "github_run_id" {
  type        = string
  description = "GitHub Actions run ID that created the resources, written to the aks-ray-github-run-id tag; empty outside Actions."
  default     = ""

  validation {
    condition     = can(regex("^[0-9]*$", var.github_run_id))
    error_message = "The GitHub run ID must be digits only (GITHUB_RUN_ID), or empty."
  }
}

variable "expires_on" {
  type        = string
  description = "RFC 3339 time after which the resources may be deleted, written to the aks-ray-expires-on tag so orphans can be found (aks-ray infra sweep); empty for none, as for a cluster kept on purpose."
  default     = ""

  validation {
    condition     = var.expires_on == "" || can(timeadd(var.expires_on, "0s"))
    error_message = "The expiry must be an RFC 3339 time such as 2030-01-31T18:00:00Z, or empty."
  }
}

variable "pull_request_principal_id" {
  type        = string
  description = "Object ID of the pull-request identity's service principal (not its client ID): given 'Azure Kubernetes Service Cluster User Role' on the cluster (to fetch a kubeconfig) and 'Azure Kubernetes Service RBAC Writer' on each of pull_request_namespaces, nothing on the subscription and no cluster-wide Kubernetes role. null: no pull-request identity."
  default     = null

  validation {
    condition     = var.pull_request_principal_id == null || can(regex("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", var.pull_request_principal_id))
    error_message = "The pull-request identity must be an object ID (a GUID such as 00000000-0000-0000-0000-000000000000), or null."
  }
}

variable "pull_request_namespaces" {
  type        = list(string)
  description = "Kubernetes namespaces pull requests train in (their namespace input), where pull_request_principal_id gets 'Azure Kubernetes Service RBAC Writer'; the cluster owner applies manifests/pull-request-rbac.yaml in each for the RayJobs."
  default     = ["aks-ray-pr"]

  validation {
    condition     = length(var.pull_request_namespaces) >= 1 && alltrue([for ns in var.pull_request_namespaces : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", ns))])
    error_message = "Give at least one namespace, each a Kubernetes name: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit."
  }
}
