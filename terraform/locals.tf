locals {
  resource_group_name = coalesce(var.resource_group_name, "${var.name_prefix}-rg")
  cluster_name        = coalesce(var.cluster_name, "${var.name_prefix}-aks")

  system_pool_name = "system"
  ray_pool_name    = "ray"

  # The Ray pods' node selector and toleration match these exactly
  # (RAY_POOL_LABEL and RAY_POOL_TAINT in scripts/aks_ray/config.py; a test
  # keeps them equal). Nothing else schedules onto the Ray pool.
  ray_pool_labels = {
    "aks-ray.io/pool" = "ray"
  }
  ray_pool_taints = ["aks-ray.io/pool=ray:NoSchedule"]

  ray_autoscaling = var.ray_autoscaling != null

  # Run-specific tags. The run ID is set when a resource is created and then
  # left alone (lifecycle.ignore_changes): it says which run made it. The
  # expiry is managed on every apply: aks-ray sets it for a cluster meant to
  # be destroyed (destroy-policy always or on-success), refreshed by every run
  # that applies, and leaves it empty for one kept on purpose (never), so the
  # tag goes and `aks-ray infra sweep` never takes a long-lived cluster.
  run_tags = merge(
    var.github_run_id == "" ? {} : { "aks-ray-github-run-id" = var.github_run_id },
    var.expires_on == "" ? {} : { "aks-ray-expires-on" = var.expires_on },
  )

  tags = merge(var.tags, { "aks-ray-managed-by" = "terraform" }, local.run_tags)
}
