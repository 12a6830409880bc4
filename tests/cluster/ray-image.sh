#!/usr/bin/env bash
# Builds the Ray image for the test cluster: a Debian root filesystem made by
# debootstrap, Python 3.11 from Debian, and Ray and torch from PyPI in a venv.
# Like the rayproject/ray images it runs as the `ray` user, uid 1000 and gid 100
# (users), with a writable HOME: the project's pods run as that numeric user
# (runAsNonRoot, see scripts/aks_ray/sandbox.py).
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

# debian_mirror: the Debian archive this machine's own apt uses for $DEBIAN_SUITE
# (deb822 .sources files first, then the one-line sources.list), so the build
# follows the machine's mirror, proxy or snapshot and names no host itself.
debian_mirror() {
  local file
  for file in /etc/apt/sources.list.d/*.sources; do
    [[ -f $file ]] || continue
    # Stanzas are separated by blank lines; take the URIs of a deb stanza serving the suite.
    awk -v suite="$DEBIAN_SUITE" '
      function flush() { if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uris != "") { split(uris, u, " "); print u[1]; found = 1; exit } types = suites = uris = "" }
      /^[[:space:]]*$/ { flush(); next }
      /^[[:space:]]*#/ { next }
      tolower($1) == "types:" { $1 = ""; types = $0 }
      tolower($1) == "suites:" { $1 = ""; suites = $0 }
      tolower($1) == "uris:" { $1 = ""; uris = $0 }
      END { if (!found) flush() }
    ' "$file" | sed 's/^ *//' | head -n1 | grep . && return 0
  done
  if [[ -f /etc/apt/sources.list ]]; then
    # deb [options] URI SUITE COMPONENT...
    sed -E 's/\[[^]]*\]//' /etc/apt/sources.list |
      awk -v suite="$DEBIAN_SUITE" '$1 == "deb" && $3 == suite { print $2; exit }' | grep . && return 0
  fi
  return 1
}

if [[ ! -d $base ]]; then
  mirror="$(debian_mirror)" ||
    die "no Debian mirror for $DEBIAN_SUITE in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list; add one to apt's configuration (a 'deb' entry for $DEBIAN_SUITE)"
  log "debootstrap $DEBIAN_SUITE from $mirror into $base"
  rm -rf "$base.partial"
  debootstrap --variant=minbase --include="$debian_packages" \
    "$DEBIAN_SUITE" "$base.partial" "$mirror" >"$CACHE_DIR/debootstrap.log" 2>&1 ||
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
# The `ray` user of the rayproject/ray images: uid 1000, primary group users (100).
grep -q '^users:' "$root/etc/group" || echo 'users:x:100:' >>"$root/etc/group"
grep -q '^ray:' "$root/etc/passwd" || {
  echo 'ray:x:1000:100:Ray:/home/ray:/bin/bash' >>"$root/etc/passwd"
  echo 'ray:!:20000:0:99999:7:::' >>"$root/etc/shadow"
}
mkdir -p "$root/home/ray"
chown -R 1000:100 "$root/home/ray"

python3 "$CLUSTER_DIR/mkimage.py" "$root" "$RAY_IMAGE" "$out" \
  --env "PATH=/opt/ray/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --env "HOME=/home/ray" --env "LANG=C.UTF-8" --workdir /home/ray --user 1000:100 --cmd '["bash"]'
rm -rf "$root"
