"""aks-ray: train a model on a Ray cluster on AKS, on any Kubernetes cluster, or locally."""

__version__ = "0.1.0"
