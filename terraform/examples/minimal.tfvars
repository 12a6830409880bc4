# The smallest useful set of inputs: everything else keeps its default
# (Kubernetes 1.33, one Standard_D2s_v5 system node, three Standard_D4s_v5 Ray nodes).
#   terraform -chdir=terraform plan -var-file=examples/minimal.tfvars -out=aks-ray.tfplan
location    = "eastus"
name_prefix = "aksraydemo"
