output "resource_group_name" {
  description = "Name of the resource group holding the cluster."
  value       = azurerm_resource_group.this.name
}

output "cluster_name" {
  description = "Name of the AKS cluster."
  value       = azurerm_kubernetes_cluster.this.name
}

output "cluster_id" {
  description = "Azure resource ID of the AKS cluster."
  value       = azurerm_kubernetes_cluster.this.id
}

output "location" {
  description = "Azure region of the cluster."
  value       = azurerm_kubernetes_cluster.this.location
}

output "kubernetes_version" {
  description = "Kubernetes version the control plane runs, patch included."
  value       = azurerm_kubernetes_cluster.this.current_kubernetes_version
}

output "node_resource_group" {
  description = "Resource group AKS manages for the nodes (deleted with the cluster)."
  value       = azurerm_kubernetes_cluster.this.node_resource_group
}

output "oidc_issuer_url" {
  description = "OIDC issuer URL of the cluster, for workload identity federated credentials."
  value       = azurerm_kubernetes_cluster.this.oidc_issuer_url
}

output "system_pool_name" {
  description = "Name of the system node pool (critical add-ons only)."
  value       = local.system_pool_name
}

output "ray_pool_name" {
  description = "Name of the Ray node pool."
  value       = azurerm_kubernetes_cluster_node_pool.ray.name
}

output "ray_pool_node_labels" {
  description = "Labels of the Ray pool's nodes; the Ray pods' node selector."
  value       = local.ray_pool_labels
}

output "ray_pool_node_taints" {
  description = "Taints of the Ray pool's nodes; the Ray pods' tolerations."
  value       = local.ray_pool_taints
}

output "container_registry_login_server" {
  description = "Login server of the registry created with container_registry_name (<name>.azurecr.io), the host of the ray-image to build and run; null when there is none."
  value       = one(azurerm_container_registry.this[*].login_server)
}
