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

  # Run-specific tags: set when a resource is created and then left alone
  # (lifecycle.ignore_changes), so a later run that reuses the cluster plans
  # no changes and costs seconds. They say which run made what, and until when
  # it is meant to live, so orphans can be found and deleted.
  run_tags = merge(
    var.github_run_id == "" ? {} : { "aks-ray-github-run-id" = var.github_run_id },
    var.expires_on == "" ? {} : { "aks-ray-expires-on" = var.expires_on },
  )

  tags = merge(var.tags, { "aks-ray-managed-by" = "terraform" }, local.run_tags)
}
