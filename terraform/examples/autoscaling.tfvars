# A Ray pool that scales to zero when idle, so a cluster kept between runs costs
# only its system node; tagged to expire so an orphan is easy to find.
location    = "westeurope"
name_prefix = "aksrayauto"
ray_autoscaling = {
  min_nodes = 0
  max_nodes = 4
}
expires_on = "2030-01-31T18:00:00Z"
tags = {
  team = "ml-platform"
}
