"""`aks-ray run`: the whole pipeline for the chosen target.

local      -> local.run            (Ray on this machine)
kubeconfig -> kube_pipeline.run    (operator install, RayJob, collect, cleanup)
aks        -> aks_pipeline.run     (infra plan/apply, credentials, then kubeconfig's steps, destroy per policy)
"""

from __future__ import annotations

import importlib

from .config import Config

TARGET_MODULES = {"local": "local", "kubeconfig": "kube_pipeline", "aks": "aks_pipeline"}


def main(cfg: Config, words: tuple[str, ...]) -> int:
    module = importlib.import_module(f"aks_ray.{TARGET_MODULES[cfg.target]}")
    return module.run(cfg)
