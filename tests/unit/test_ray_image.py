"""manifests/Dockerfile, the image with torch in it (issue 15, point 3), against the project's pins.

Offline checks: the Dockerfile starts from versions.RAY_IMAGE, installs only from
the hash-locked requirements/ray-image.txt with --require-hashes, names no package
index host (the index is a build argument without a default), and checks the
versions it installed; the tag the README tells people to build is one
`install-torch: auto` recognises (no pip runtime environment) and whose Ray version
config reads; the local cluster's image follows the same convention; and the lock,
once `make lock TORCH_INDEX_URL=...` has written it, is the CPU build of the
pinned torch with a hash on every entry.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_requirements_lock import parse_lock

from aks_ray import config, rayjob, versions

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "manifests" / "Dockerfile").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
IMAGE_LOCK = ROOT / "requirements" / "ray-image.txt"
# A host name is a dotted name of letters; the build argument's value is the caller's.
HOST = re.compile(r"\b(?:[a-z0-9-]+\.)+(?:org|com|io|net|dev)\b")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments left out."""
    logical, current = [], ""
    for line in DOCKERFILE.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            logical.append(current.strip())
            current = ""
    return [(text.split(" ", 1)[0].upper(), text.split(" ", 1)[1]) for text in logical]


def test_the_dockerfile_starts_from_the_pinned_ray_image():
    steps = instructions()
    assert steps[0] == ("ARG", f"RAY_IMAGE={versions.RAY_IMAGE}")
    assert ("FROM", "${RAY_IMAGE}") in steps


def test_torch_comes_only_from_the_hash_locked_file_and_the_index_from_a_build_argument():
    steps = instructions()
    assert ("ARG", "TORCH_INDEX_URL") in steps, "the index is a build argument with no default"
    copies = [args for kind, args in steps if kind == "COPY"]
    assert copies == ["--chown=1000:100 requirements/ray-image.txt /tmp/aks-ray/ray-image.txt"]
    runs = " ".join(args for kind, args in steps if kind == "RUN")
    install = re.search(r"pip install (.*?) &&", runs).group(1)
    for flag in ("--require-hashes", "--no-deps", '--extra-index-url "${TORCH_INDEX_URL}"', "-r /tmp/aks-ray/ray-image.txt"):
        assert flag in install
    assert runs.count("pip install") == 1, "nothing installed outside the lock"
    assert f"('{versions.RAY_VERSION}', '{versions.TORCH_VERSION}+cpu')" in runs, "the build checks what it installed"
    assert not HOST.findall(DOCKERFILE.replace(versions.RAY_IMAGE, "")), "no index host in the project"


def test_the_tag_the_readme_builds_is_one_install_torch_auto_recognises():
    tags = set(re.findall(r"<acr>\.azurecr\.io/(aks-ray/ray:[^\s`\"]+)", README))
    assert tags, "the README gives the image to build into the registry"
    for tag in tags:
        image = f"example.azurecr.io/{tag}"
        assert rayjob.image_has_torch(image), f"{tag}: install-torch: auto would still pip-install torch"
        assert config.image_ray_version(image) == versions.RAY_VERSION, f"{tag}: rayVersion would not be read from the tag"
        assert tag in DOCKERFILE, f"{tag}: the Dockerfile's own build command names another tag"
    cfg = config.load({}, {"AKS_RAY_TARGET": "kubeconfig", "AKS_RAY_RAY_IMAGE": image})
    assert "pip" not in rayjob.runtime_env(cfg)


def test_the_local_clusters_image_follows_the_same_tag_convention():
    values = dict(
        line.split("=", 1) for line in (ROOT / "tests" / "cluster" / "versions.env").read_text(encoding="utf-8").splitlines() if "=" in line
    )
    assert (values["RAY_VERSION"], values["TORCH_VERSION"]) == (versions.RAY_VERSION, versions.TORCH_VERSION)
    assert rayjob.image_has_torch(values["RAY_IMAGE"]) and config.image_ray_version(values["RAY_IMAGE"]) == versions.RAY_VERSION


def test_the_image_lock_is_the_cpu_build_of_the_pinned_torch_with_hashes():
    if not IMAGE_LOCK.is_file():
        pytest.skip(
            "requirements/ray-image.txt is not written yet: run `make lock TORCH_INDEX_URL=<PyTorch's CPU wheel index>` "
            "where that index is reachable (manifests/Dockerfile cannot be built without it)"
        )
    text = IMAGE_LOCK.read_text(encoding="utf-8")
    lock = parse_lock(text)
    assert lock["torch"][0] == f"{versions.TORCH_VERSION}+cpu"
    assert "ray" not in lock, "Ray is the base image's; the lock adds torch only"
    assert all(hashes for _version, hashes in lock.values())
    assert not any(name.startswith("nvidia-") for name in lock), "a CUDA library in the CPU image"
    assert f"(uv {versions.UV_VERSION})" in text.splitlines()[1]
    assert not HOST.findall(text), "the index host stays out of the file"
