data "azurerm_client_config" "current" {}

resource "azurerm_resource_group" "this" {
  name     = local.resource_group_name
  location = var.location
  tags     = local.tags

  lifecycle {
    ignore_changes = [tags["aks-ray-github-run-id"], tags["aks-ray-expires-on"]]
  }
}

resource "azurerm_kubernetes_cluster" "this" {
  name                = local.cluster_name
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  dns_prefix          = var.name_prefix
  kubernetes_version  = var.kubernetes_version
  sku_tier            = var.sku_tier
  tags                = local.tags

  automatic_upgrade_channel = var.automatic_upgrade_channel == "none" ? null : var.automatic_upgrade_channel
  node_os_upgrade_channel   = "NodeImage"

  # Workload identity lets pods (the Ray job, for instance) reach Azure with a
  # federated credential instead of a stored secret.
  oidc_issuer_enabled       = true
  workload_identity_enabled = true

  # No static cluster credentials: people and pipelines sign in with Azure AD
  # and are authorised by Azure RBAC role assignments.
  local_account_disabled            = true
  role_based_access_control_enabled = true
  azure_active_directory_role_based_access_control {
    tenant_id          = data.azurerm_client_config.current.tenant_id
    azure_rbac_enabled = true
  }

  dynamic "api_server_access_profile" {
    for_each = length(var.api_server_authorized_ip_ranges) > 0 ? [1] : []
    content {
      authorized_ip_ranges = var.api_server_authorized_ip_ranges
    }
  }

  default_node_pool {
    name                        = local.system_pool_name
    vm_size                     = var.system_vm_size
    node_count                  = var.system_node_count
    orchestrator_version        = var.kubernetes_version
    max_pods                    = 110
    temporary_name_for_rotation = "systemtmp"
    tags                        = local.tags

    # Taints the pool CriticalAddonsOnly=true:NoSchedule, so nothing but
    # cluster add-ons competes with them for this small pool.
    only_critical_addons_enabled = true

    upgrade_settings {
      max_surge = "10%"
    }
  }

  identity {
    type = "SystemAssigned"
  }

  network_profile {
    # Azure CNI overlay with Cilium: pod IPs outside the VNet, network policy
    # enforced, and no extra charge.
    network_plugin      = "azure"
    network_plugin_mode = "overlay"
    network_data_plane  = "cilium"
    network_policy      = "cilium"
    load_balancer_sku   = "standard"
  }

  lifecycle {
    ignore_changes = [tags["aks-ray-github-run-id"], tags["aks-ray-expires-on"], default_node_pool[0].tags]
  }
}

resource "azurerm_kubernetes_cluster_node_pool" "ray" {
  name                  = local.ray_pool_name
  kubernetes_cluster_id = azurerm_kubernetes_cluster.this.id
  mode                  = "User"
  vm_size               = var.ray_vm_size
  orchestrator_version  = var.kubernetes_version
  max_pods              = 110
  tags                  = local.tags

  # A new VM size rotates the pool through a temporary one instead of replacing it.
  temporary_name_for_rotation = "raytmp"

  # Only pods that select and tolerate these land here: the Ray head and workers.
  node_labels = local.ray_pool_labels
  node_taints = local.ray_pool_taints

  # With autoscaling, node_count is left to the autoscaler (null), so that a
  # plan never tries to undo its work.
  auto_scaling_enabled = local.ray_autoscaling
  node_count           = local.ray_autoscaling ? null : var.ray_node_count
  min_count            = local.ray_autoscaling ? var.ray_autoscaling.min_nodes : null
  max_count            = local.ray_autoscaling ? var.ray_autoscaling.max_nodes : null

  upgrade_settings {
    max_surge = "10%"
  }

  lifecycle {
    ignore_changes = [tags["aks-ray-github-run-id"], tags["aks-ray-expires-on"]]
  }
}

# Local accounts are disabled, so whoever runs the pipeline needs an Azure RBAC
# role on the cluster to install KubeRay and run the job.
resource "azurerm_role_assignment" "cluster_admin" {
  for_each = toset(concat(
    var.grant_deployer_cluster_admin ? [data.azurerm_client_config.current.object_id] : [],
    var.cluster_admin_object_ids,
  ))

  scope                = azurerm_kubernetes_cluster.this.id
  role_definition_name = "Azure Kubernetes Service RBAC Cluster Admin"
  principal_id         = each.value
}
