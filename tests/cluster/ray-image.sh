#!/usr/bin/env bash
# Builds the Ray image for the test cluster: a Debian root filesystem made by
# debootstrap, Python 3.11 from Debian, and Ray and torch from PyPI in a venv.
#   ray-image.sh OUT.tar
# Wheels are kept in the cache (keyed by version), so a rebuild downloads nothing.
. "$(dirname "$0")/lib.sh"

out="$1"
# One build at a time; a second caller waits, then finds the image made.
exec {lock}>"$CACHE_DIR/.ray-image.lock"
flock "$lock"
if [[ -f $out ]]; then exit 0; fi
wheels="$CACHE_DIR/wheels/ray-$RAY_VERSION-torch-$TORCH_VERSION"
requirements=("ray[default,train]==$RAY_VERSION" "torch==$TORCH_VERSION")
root="$CACHE_DIR/rootfs-ray.partial"

# Undo the chroot's bind mounts however the build ends.
cleanup() {
  local m
  for m in $(awk -v d="$root/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$m" || true
  done
}
trap cleanup EXIT

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

cleanup
rm -rf "$root"
log "debootstrap $DEBIAN_SUITE into $root"
debootstrap --variant=minbase \
  --include=python3,python3-venv,ca-certificates,wget,procps,netbase,tzdata \
  "$DEBIAN_SUITE" "$root" http://deb.debian.org/debian >"$CACHE_DIR/debootstrap.log" 2>&1 ||
  die "debootstrap failed; see $CACHE_DIR/debootstrap.log"

log "installing Ray and torch into /opt/ray"
mount --bind "$wheels" "$(mkdir -p "$root/wheels" && echo "$root/wheels")"
mount -t proc proc "$root/proc"
chroot "$root" python3 -m venv /opt/ray
chroot "$root" /opt/ray/bin/pip install --quiet --no-index --find-links /wheels --no-compile \
  --disable-pip-version-check "${requirements[@]}"
chroot "$root" /opt/ray/bin/python -c "import ray, torch; print('ray', ray.__version__, 'torch', torch.__version__)"
cleanup
rmdir "$root/wheels"
# Slimmer image: apt lists and caches are not needed at run time.
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/var/cache/apt/archives/"*.deb
mkdir -p "$root/home/ray"

python3 "$CLUSTER_DIR/mkimage.py" "$root" "$RAY_IMAGE" "$out" \
  --env "PATH=/opt/ray/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --env "HOME=/home/ray" --env "LANG=C.UTF-8" --workdir /home/ray --cmd '["bash"]'
rm -rf "$root"
