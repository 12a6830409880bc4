#!/usr/bin/env bash
# Builds the Ray image for the test cluster: a Debian root filesystem made by
# debootstrap, Python 3.11 from Debian, and Ray and torch from PyPI in a venv.
#   ray-image.sh OUT.tar
# The debootstrap result and the wheels are kept in the cache (keyed by suite,
# package list and versions), so a rebuild downloads nothing.
. "$(dirname "$0")/lib.sh"

out="$1"
# One build at a time; a second caller waits, then finds the image made.
mkdir -p "$CACHE_DIR"
exec {lock}>"$CACHE_DIR/.ray-image.lock"
flock "$lock"
if [[ -f $out ]]; then exit 0; fi

requirements=("ray[default,train]==$RAY_VERSION" "torch==$TORCH_VERSION")
wheels="$CACHE_DIR/wheels/ray-$RAY_VERSION-torch-$TORCH_VERSION"
# wget: KubeRay's default probes of Ray pods run it. procps: ps for Ray's tools.
debian_packages=python3,python3-venv,ca-certificates,wget,procps,netbase,tzdata
base="$CACHE_DIR/debian-$DEBIAN_SUITE-$(echo "$debian_packages" | sha256sum | cut -c1-8)"
root="$CACHE_DIR/rootfs-ray.partial"

# Undo the chroot's mounts however the build ends.
cleanup() {
  local m
  for m in $(awk -v d="$root/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$m" || true
  done
}
trap cleanup EXIT

# in_root COMMAND...: runs COMMAND in the image's root with a clean
# environment, so nothing of the host's (PIP_* settings, say) leaks in.
in_root() {
  chroot "$root" env -i PATH=/opt/ray/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 "$@"
}

if [[ ! -f $wheels/.complete ]]; then
  # The host's Python 3.11 on Debian bookworm matches the image (glibc, ABI),
  # so its own tags select the right wheels.
  python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' ||
    die "the wheels must be fetched by a Python 3.11, as in the image"
  log "downloading wheels for ${requirements[*]}"
  mkdir -p "$wheels"
  python3 -m pip download --quiet --dest "$wheels" --only-binary=:all: "${requirements[@]}"
  touch "$wheels/.complete"
fi

if [[ ! -d $base ]]; then
  log "debootstrap $DEBIAN_SUITE into $base"
  rm -rf "$base.partial"
  debootstrap --variant=minbase --include="$debian_packages" \
    "$DEBIAN_SUITE" "$base.partial" http://deb.debian.org/debian >"$CACHE_DIR/debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $CACHE_DIR/debootstrap.log"
  rm -rf "$base.partial/var/lib/apt/lists/"* "$base.partial/var/cache/apt/"*.bin \
    "$base.partial/var/cache/apt/archives/"*.deb
  mv "$base.partial" "$base"
fi

cleanup
rm -rf "$root"
cp -a "$base" "$root"
log "installing Ray and torch into /opt/ray"
mkdir -p "$root/wheels"
mount --bind "$wheels" "$root/wheels"
mount -t proc proc "$root/proc"
in_root python3 -m venv /opt/ray
in_root /opt/ray/bin/pip install --quiet --no-index --find-links /wheels --no-compile \
  --disable-pip-version-check "${requirements[@]}"
in_root python -c "import ray, torch; print('ray', ray.__version__, 'torch', torch.__version__)"
cleanup
rmdir "$root/wheels"
# KubeRay starts Ray through "bash -l", whose /etc/profile resets PATH.
echo 'export PATH=/opt/ray/bin:$PATH' >"$root/etc/profile.d/ray.sh"
mkdir -p "$root/home/ray"

python3 "$CLUSTER_DIR/mkimage.py" "$root" "$RAY_IMAGE" "$out" \
  --env "PATH=/opt/ray/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --env "HOME=/home/ray" --env "LANG=C.UTF-8" --workdir /home/ray --cmd '["bash"]'
rm -rf "$root"
