#!/usr/bin/env bash
# Builds (or finds in the cache) what a kind cluster needs where no registry
# is reachable: the kind binary, kubeadm, etcd, the control-plane images and
# the kind node image. Each part is keyed by its version and skipped when cached.
#   build.sh
# The other Kubernetes binaries (kubelet, kubectl, kube-apiserver, ...) and the
# pause image are the local test cluster's (tests/cluster/build.sh), read
# from its cache and never rebuilt here.
. "$(dirname "$0")/lib.sh"

GO_BUILD_ENV=(env GOFLAGS=-trimpath CGO_ENABLED=0)
# kind's base image (its images/base/Dockerfile) less what this node does not
# use (NFS, iSCSI, fuse-overlayfs), with Debian's containerd, runc and CNI
# plugins in place of kind's own builds. dbus: runc's systemd cgroup driver.
NODE_PACKAGES=(systemd systemd-sysv dbus conntrack iptables nftables iproute2 ethtool util-linux mount kmod
  libseccomp2 pigz bash ca-certificates curl jq procps containerd runc containernetworking-plugins)
# kube-proxy runs iptables-save/-restore and conntrack in its own container.
KUBE_PROXY_PACKAGES=(iptables conntrack)

build_kind() {
  [[ -x $KIND_BIN ]] && return
  log "building kind $KIND_VERSION from its Go module"
  "${GO_BUILD_ENV[@]}" GOBIN="$(dirname "$KIND_BIN")" go install "sigs.k8s.io/kind@$KIND_VERSION"
}

# kind_source: the folder of kind's module source, for its node base files.
kind_source() {
  go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'
}

# kubeadm, with the version stamp the local cluster's binaries carry
# (kind reads the version from the node, kubeadm's own defaults from this).
build_kubeadm() {
  [[ -x $KUBEADM_BIN ]] && return
  log "building kubeadm from k8s.io/kubernetes v$KUBERNETES_VERSION (gomod/k8s)"
  local v="v$KUBERNETES_VERSION" minor ld="-s -w" pkg
  minor="$(cut -d. -f2 <<<"$KUBERNETES_VERSION")"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  mkdir -p "$(dirname "$KUBEADM_BIN")"
  (cd "$KIND_DIR/gomod/k8s" && "${GO_BUILD_ENV[@]}" go build -ldflags "$ld" -o "$KUBEADM_BIN.partial" k8s.io/kubernetes/cmd/kubeadm)
  mv "$KUBEADM_BIN.partial" "$KUBEADM_BIN"
}

build_etcd() {
  [[ -x $ETCD_SERVER_BIN ]] && return
  log "building etcd $ETCD_VERSION from its Go module (gomod/etcd)"
  mkdir -p "$(dirname "$ETCD_SERVER_BIN")"
  (cd "$KIND_DIR/gomod/etcd" && "${GO_BUILD_ENV[@]}" go build -ldflags "-s -w" -o "$ETCD_SERVER_BIN.partial" go.etcd.io/etcd/server/v3)
  mv "$ETCD_SERVER_BIN.partial" "$ETCD_SERVER_BIN"
}

require_cluster_parts() {
  local missing=() f
  for f in kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
    [[ -x $K8S_BIN/$f ]] || missing+=("$K8S_BIN/$f")
  done
  [[ -f $(image_archive "$PAUSE_IMAGE") ]] || missing+=("$(image_archive "$PAUSE_IMAGE")")
  ((${#missing[@]} == 0)) && return
  printf '  missing: %s\n' "${missing[@]}" >&2
  die "the local test cluster's build has not made these yet; run 'tests/cluster/build.sh full' (or make cluster-up) first"
}

# debian_mirror: the Debian mirror this machine's apt uses (or AKS_RAY_KIND_DEBIAN_MIRROR).
debian_mirror() {
  if [[ -n ${AKS_RAY_KIND_DEBIAN_MIRROR:-} ]]; then echo "$AKS_RAY_KIND_DEBIAN_MIRROR"; return; fi
  local uri
  uri="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  [[ -n $uri ]] || uri="$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
  [[ -n $uri ]] || die "no Debian mirror in this machine's apt sources; set AKS_RAY_KIND_DEBIAN_MIRROR"
  echo "$uri"
}

# debian_root PACKAGE...: a cached debootstrap root with these packages; prints its path.
debian_root() {
  local list dir
  list="$(IFS=,; echo "$*")"
  dir="$KIND_CACHE/debian-$DEBIAN_SUITE-$(sha256sum <<<"$list" | cut -c1-8)"
  if [[ ! -d $dir ]]; then
    log "debootstrap $DEBIAN_SUITE with $list"
    rm -rf "$dir.partial"
    debootstrap --variant=minbase --include="$list" "$DEBIAN_SUITE" "$dir.partial" "$(debian_mirror)" \
      >"$dir.log" 2>&1 || die "debootstrap failed; see $dir.log"
    rm -rf "$dir.partial/var/lib/apt/lists/"* "$dir.partial/var/cache/apt/"*.bin "$dir.partial/var/cache/apt/archives/"*.deb
    mv "$dir.partial" "$dir"
  fi
  echo "$dir"
}

# minimal_root DIR: /etc/passwd, /etc/group and /tmp for a static binary's image.
minimal_root() {
  mkdir -p "$1/etc" "$1/tmp" "$1/usr/local/bin"
  chmod 1777 "$1/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$1/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$1/etc/group"
}

# control_plane_image REF BINARY: an image with BINARY as /usr/local/bin/<its name>,
# where kubeadm's static pods run it.
control_plane_image() {
  local ref="$1" binary="$2" out root
  out="$(kind_image_archive "$ref")"
  [[ -f $out && $out -nt $binary ]] && return
  root="$(mktemp -d)"
  minimal_root "$root"
  install -m 0755 "$binary" "$root/usr/local/bin/$(basename "$binary")"
  mkdir -p "$KIND_IMAGES"
  python3 "$CLUSTER_DIR/mkimage.py" "$root" "$ref" "$out"
  rm -rf "$root"
}

kube_proxy_image() {
  local ref="$K8S_IMAGE_REPO/kube-proxy:v$KUBERNETES_VERSION" out base root
  out="$(kind_image_archive "$ref")"
  [[ -f $out && $out -nt $K8S_BIN/kube-proxy && $out -nt $KIND_DIR/node/kube-proxy ]] && return
  base="$(debian_root "${KUBE_PROXY_PACKAGES[@]}")"
  root="$(mktemp -d)"
  cp -a "$base/." "$root/"
  install -m 0755 "$K8S_BIN/kube-proxy" "$root/usr/local/bin/kube-proxy.bin"
  install -m 0755 "$KIND_DIR/node/kube-proxy" "$root/usr/local/bin/kube-proxy"
  mkdir -p "$KIND_IMAGES"
  python3 "$CLUSTER_DIR/mkimage.py" "$root" "$ref" "$out"
  rm -rf "$root"
}

build_images() {
  local c
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    control_plane_image "$K8S_IMAGE_REPO/$c:v$KUBERNETES_VERSION" "$K8S_BIN/$c"
  done
  control_plane_image "$ETCD_IMAGE" "$ETCD_SERVER_BIN"
  kube_proxy_image
}

# node_archives: the images baked into the node's containerd: those kubeadm's
# static pods and kube-proxy run, and the pause image every pod needs first.
node_archives() {
  local c
  for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
    kind_image_archive "$K8S_IMAGE_REPO/$c:v$KUBERNETES_VERSION"
  done
  kind_image_archive "$ETCD_IMAGE"
  image_archive "$PAUSE_IMAGE"
}

# import_into_root ROOTFS: the node_archives into ROOTFS/var/lib/containerd,
# by a containerd of the host's (the same Debian package as the node's) on a
# private socket; not unpacked, as kind's own build does (the node's
# containerd unpacks an image when a container first uses it).
import_into_root() {
  local rootfs="$1" tmp pid archive
  tmp="$(mktemp -d /tmp/aks-ray-kind-import.XXXXXX)"
  cat >"$tmp/config.toml" <<TOML
version = 2
root = "$rootfs/var/lib/containerd"
state = "$tmp/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$tmp/containerd.sock"
[ttrpc]
  address = "$tmp/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$tmp/opt"
TOML
  /usr/bin/containerd --config "$tmp/config.toml" >"$tmp/containerd.log" 2>&1 &
  pid=$!
  local ctr_=(ctr --address "$tmp/containerd.sock" --namespace k8s.io)
  wait_for "the import containerd" 30 "${ctr_[@]}" version || { cat "$tmp/containerd.log" >&2; kill "$pid"; die "containerd for the import did not start"; }
  while read -r archive; do
    "${ctr_[@]}" images import --no-unpack --all-platforms "$archive" >/dev/null
  done < <(node_archives)
  "${ctr_[@]}" images ls -q >&2
  kill "$pid"
  wait "$pid" || true
  rm -rf "$tmp"
}

# build_node_image: the kind node image, from a Debian root and kind's own
# node base files (entrypoint, systemd units, kubelet drop-ins, sysctls, taken
# from kind's module source), with the Kubernetes binaries and images above;
# made with `docker import`, as no base image can be pulled.
build_node_image() {
  if node_image_current; then return; fi
  log "building the node image $NODE_IMAGE"
  local base src root
  base="$(debian_root "${NODE_PACKAGES[@]}")"
  src="$(kind_source)/images/base/files"
  root="$KIND_CACHE/node-rootfs.partial"
  rm -rf "$root"
  cp -a "$base" "$root"

  # kind's base files, where its Dockerfile puts them.
  install -m 0755 "$src/usr/local/bin/entrypoint" "$root/usr/local/bin/entrypoint"
  mkdir -p "$root/kind/bin" "$root/etc/systemd/system/kubelet.service.d" "$root/etc/containerd" "$root/etc/kubernetes/manifests"
  install -m 0755 "$src/kind/bin/"* "$root/kind/bin/"
  install -m 0644 "$src/etc/systemd/system/"{containerd,kubelet,undo-mount-hacks}.service \
    "$src/etc/systemd/system/kubelet.slice" "$root/etc/systemd/system/"
  install -m 0644 "$src/etc/systemd/system/kubelet.service.d/"* "$root/etc/systemd/system/kubelet.service.d/"
  install -m 0644 "$src/etc/default/kubelet" "$root/etc/default/kubelet"
  install -m 0644 "$src/etc/sysctl.d/"* "$KIND_DIR/node/99-aksray.conf" "$root/etc/sysctl.d/"
  install -m 0644 "$src/etc/crictl.yaml" "$root/etc/crictl.yaml"
  # kind's containerd unit runs its own build from /usr/local/bin; this is Debian's.
  ln -sf /usr/bin/containerd "$root/usr/local/bin/containerd"

  # containerd: this folder's configuration, and kind's base runtime spec (its
  # product-UUID hook, no rlimits) made by this containerd's `ctr oci spec`.
  sed "s|@PAUSE_IMAGE@|$PAUSE_IMAGE|" "$KIND_DIR/node/containerd.toml" >"$root/etc/containerd/config.toml"
  chroot "$root" ctr oci spec |
    jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' |
    jq 'del(.process.rlimits)' >"$root/etc/containerd/cri-base.json"
  build_runc_wrapper
  install -m 0755 "$KIND_TOOLS/runc-wrapper" "$root/usr/local/sbin/runc-wrapper"

  # The pod network: a static ptp configuration in place of kindnetd (see node/default-cni.yaml).
  mkdir -p "$root/etc/cni/net.d" "$root/opt/cni" "$root/kind/manifests"
  rm -f "$root/etc/cni/net.d/"*
  sed "s|@POD_SUBNET@|$KIND_POD_SUBNET|" "$KIND_DIR/node/10-aksray-ptp.conflist" >"$root/etc/cni/net.d/10-aksray-ptp.conflist"
  ln -sfn /usr/lib/cni "$root/opt/cni/bin"
  install -m 0644 "$KIND_DIR/node/default-cni.yaml" "$root/kind/manifests/default-cni.yaml"

  # Kubernetes, where kind's node image has it; kind reads the version from /kind/version.
  install -m 0755 "$K8S_BIN/kubelet" "$K8S_BIN/kubectl" "$KUBEADM_BIN" "$root/usr/bin/"
  printf 'v%s' "$KUBERNETES_VERSION" >"$root/kind/version"

  # systemd as kind's Dockerfile sets it up: only the units a node needs start.
  find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  rm -f "$root/lib/systemd/system/multi-user.target.wants/"* "$root/etc/systemd/system/"*.wants/* \
    "$root/lib/systemd/system/local-fs.target.wants/"* "$root/lib/systemd/system/sockets.target.wants/"*udev* \
    "$root/lib/systemd/system/sockets.target.wants/"*initctl* "$root/lib/systemd/system/basic.target.wants/"*
  echo "ReadKMsg=no" >>"$root/etc/systemd/journald.conf"
  chroot "$root" systemctl enable kubelet.service containerd.service undo-mount-hacks.service 2>/dev/null
  chroot "$root" systemctl mask systemd-binfmt.service 2>/dev/null

  import_into_root "$root"
  local inputs
  inputs="$(node_image_inputs)"
  tar --numeric-owner --xattrs -C "$root" -cf - . |
    docker import --change 'ENV container=docker' \
      --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
      --change "LABEL aks-ray.inputs=$inputs" - "$NODE_IMAGE" >/dev/null
  rm -rf "$root"
  node_image_current || die "docker import did not make $NODE_IMAGE with inputs $inputs"
  log "node image $NODE_IMAGE ($(docker image inspect -f '{{.Size}}' "$NODE_IMAGE" | numfmt --to=iec))"
}

main() {
  [[ $(id -u) == 0 ]] || die "run as root: debootstrap, chroot and the image build need it"
  mkdir -p "$KIND_CACHE"
  require_cluster_parts
  build_kind
  build_kubeadm
  build_etcd
  build_images
  ensure_docker
  build_node_image
}

main "$@"
