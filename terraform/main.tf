data "azurerm_client_config" "current" {}

resource "azurerm_resource_group" "this" {
  name     = local.resource_group_name
  location = var.location
  tags     = local.tags

  lifecycle {
    ignore_changes = [tags["aks-ray-github-run-id"]]
  }
}

resource "azurerm_kubernetes_cluster" "this" {
  # Checks skipped on purpose, for a cluster that lives for one CI run:
  #checkov:skip=CKV_AZURE_115:Private cluster: GitHub-hosted runners reach the API server over the internet; access needs Azure AD and Azure RBAC, and api_server_authorized_ip_ranges can narrow it.
  #checkov:skip=CKV_AZURE_4:Azure Monitor logging costs Log Analytics ingestion per run; the action collects pod logs and events into its artifact instead.
  #checkov:skip=CKV_AZURE_116:The Azure Policy add-on puts Gatekeeper on the single small system node and slows creation; no policies are assigned to this cluster.
  #checkov:skip=CKV_AZURE_117:A disk encryption set needs a Key Vault and a customer-managed key; platform-managed keys already encrypt the disks at rest.
  #checkov:skip=CKV_AZURE_170:The Free tier (no uptime SLA) suits a CI cluster; set sku_tier = "Standard" for an SLA.
  #checkov:skip=CKV_AZURE_172:The Key Vault secrets provider add-on is not enabled, so there are no CSI driver secrets to rotate.
  #checkov:skip=CKV_AZURE_226:Ephemeral OS disks need a VM size with a local temp disk; the default Dsv5 sizes have none.
  #checkov:skip=CKV_AZURE_227:Encryption at host needs the EncryptionAtHost feature registered on the subscription, which the README cannot assume.
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
    ignore_changes = [tags["aks-ray-github-run-id"], default_node_pool[0].tags]
  }
}

resource "azurerm_kubernetes_cluster_node_pool" "ray" {
  #checkov:skip=CKV_AZURE_227:Encryption at host needs the EncryptionAtHost feature registered on the subscription, which the README cannot assume.
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

  # With autoscaling, node_count is left to the autoscaler (null): the
  # argument is optional and computed, so a plan never tries to undo the
  # autoscaler's work, and the provider creates the pool with min_count nodes
  # when node_count is unset (its create code does so in 4.16 and 4.81 alike).
  # A fixed count stays managed, with no ignore_changes, so that changing
  # ray_node_count resizes the pool.
  auto_scaling_enabled = local.ray_autoscaling
  node_count           = local.ray_autoscaling ? null : var.ray_node_count
  min_count            = local.ray_autoscaling ? var.ray_autoscaling.min_nodes : null
  max_count            = local.ray_autoscaling ? var.ray_autoscaling.max_nodes : null

  # Delete by default; Deallocate keeps a scaled-down node's disk and with it the images
  # it pulled, so a scale-up starts that node again instead of pulling onto a new one.
  scale_down_mode = var.ray_scale_down_mode

  upgrade_settings {
    max_surge = "10%"
  }

  lifecycle {
    ignore_changes = [tags["aks-ray-github-run-id"]]
  }
}

# An optional registry for the image built from manifests/Dockerfile (README, "An image
# with torch in it"). The nodes pull from it as the cluster's kubelet identity, so no
# pull secret exists anywhere; the admin user (a static password) stays off.
resource "azurerm_container_registry" "this" {
  #checkov:skip=CKV_AZURE_139:Public network access stays on: GitHub-hosted runners and az acr build reach the registry over the internet, and pulls need Azure AD (AcrPull), with no admin user and no anonymous pull.
  #checkov:skip=CKV_AZURE_163:Vulnerability scanning is Microsoft Defender for Containers, a per-subscription plan with its own cost, not a registry setting.
  #checkov:skip=CKV_AZURE_164:Content trust (signed images) needs the Premium SKU; the image is built from manifests/Dockerfile into this registry by its owner.
  #checkov:skip=CKV_AZURE_165:Geo-replication needs the Premium SKU; the registry serves one cluster in one region.
  #checkov:skip=CKV_AZURE_166:Quarantine of pushed images needs the Premium SKU and a scanner to release them.
  #checkov:skip=CKV_AZURE_167:A retention policy for untagged manifests needs the Premium SKU; the Basic registry holds a few tagged images.
  #checkov:skip=CKV_AZURE_233:Zone redundancy needs the Premium SKU; a lost zone costs a rebuild of one image.
  #checkov:skip=CKV_AZURE_237:Dedicated data endpoints need the Premium SKU and matter only behind a firewall with rules per endpoint.
  count = var.container_registry_name == null ? 0 : 1

  name                = var.container_registry_name
  resource_group_name = azurerm_resource_group.this.name
  location            = azurerm_resource_group.this.location
  sku                 = "Basic"
  admin_enabled       = false
  tags                = local.tags

  lifecycle {
    ignore_changes = [tags["aks-ray-github-run-id"]]
  }
}

resource "azurerm_role_assignment" "kubelet_acr_pull" {
  count = var.container_registry_name == null ? 0 : 1

  scope                = azurerm_container_registry.this[0].id
  role_definition_name = "AcrPull"
  principal_id         = azurerm_kubernetes_cluster.this.kubelet_identity[0].object_id
  # The kubelet identity is new with the cluster: skip the directory lookup, which Azure
  # AD's replication lag can fail for minutes (the provider then sends the principal
  # type, ServicePrincipal, which a managed identity is).
  skip_service_principal_aad_check = true
  description                      = "aks-ray: the cluster's nodes pull images from the registry"
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

# The pull-request identity (README, "Two identities"): a kubeconfig for the cluster and the
# built-in kinds of the runs' namespaces, nothing more. Azure's Writer role grants no custom
# resources, so the RayJobs come from the Kubernetes Role in manifests/pull-request-rbac.yaml.
resource "azurerm_role_assignment" "pull_request_cluster_user" {
  count = var.pull_request_principal_id == null ? 0 : 1

  scope                = azurerm_kubernetes_cluster.this.id
  role_definition_name = "Azure Kubernetes Service Cluster User Role"
  principal_id         = var.pull_request_principal_id
  principal_type       = "ServicePrincipal"
  description          = "aks-ray pull-request identity: fetch the cluster's user kubeconfig"
}

resource "azurerm_role_assignment" "pull_request_namespace_writer" {
  for_each = var.pull_request_principal_id == null ? toset([]) : toset(var.pull_request_namespaces)

  scope                = "${azurerm_kubernetes_cluster.this.id}/namespaces/${each.value}"
  role_definition_name = "Azure Kubernetes Service RBAC Writer"
  principal_id         = var.pull_request_principal_id
  principal_type       = "ServicePrincipal"
  description          = "aks-ray pull-request identity: run jobs in namespace ${each.value}"
}
