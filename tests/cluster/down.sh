#!/usr/bin/env bash
# Stops the local test cluster and removes everything it left on the machine:
# containers, processes, mounts, network namespaces, links, routes, iptables
# rules and cgroups. The cache (binaries, images) is kept. Safe to run twice.
. "$(dirname "$0")/lib.sh"

ctr_() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

# stop_daemons NAME...: SIGTERM to all of them at once, then SIGKILL to any
# still running after a deadline; by recorded pid only.
stop_daemons() {
  local name pidfile pid pids=() names=()
  for name in "$@"; do
    pidfile="$PID_DIR/$name.pid"
    [[ -f $pidfile ]] || continue
    pid="$(cat "$pidfile")"
    rm -f "$pidfile"
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid") names+=("$name")
  done
  local deadline=$((SECONDS + 20)) i
  for i in "${!pids[@]}"; do
    while kill -0 "${pids[$i]}" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      log "${names[$i]} (pid ${pids[$i]}) ignored SIGTERM; killing it"
      kill -KILL "${pids[$i]}" 2>/dev/null || true
    fi
    log "stopped ${names[$i]}"
  done
}

# Kills every container through containerd, so shims exit and unmount rootfs.
remove_containers() {
  [[ -S $CONTAINERD_SOCK ]] && daemon_alive containerd || return 0
  local id
  for id in $(ctr_ tasks ls -q 2>/dev/null); do
    ctr_ tasks kill --all --signal SIGKILL "$id" >/dev/null 2>&1 || true
  done
  local deadline=$((SECONDS + 30))
  for id in $(ctr_ tasks ls -q 2>/dev/null); do
    until ctr_ tasks delete --force "$id" >/dev/null 2>&1 || ((SECONDS >= deadline)); do sleep 0.5; done
  done
  for id in $(ctr_ containers ls -q 2>/dev/null); do
    ctr_ containers delete "$id" >/dev/null 2>&1 || true
  done
}

# Processes still running one of this cluster's binaries (a daemon whose pid
# file was lost, a shim of our containerd), found by executable path and ended
# by pid. Not anything else under the cache: a build may be running there.
kill_leftovers() {
  local dir pid exe
  for dir in /proc/[0-9]*; do
    pid="${dir#/proc/}"
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || continue
    case "$exe" in
      "$K8S_BIN"/* | "$ETCD_BIN"/* | "$TOOLS_BIN"/* | "$NETPOL_BIN"/*) ;;
      /usr/bin/containerd-shim-runc-v2)
        grep -qaF "$CONTAINERD_SOCK" "/proc/$pid/cmdline" 2>/dev/null || continue ;;
      *) continue ;;
    esac
    log "ending leftover $exe (pid $pid)"
    kill -KILL "$pid" 2>/dev/null || true
  done
}

unmount_under() {
  local dir="$1" m
  # Deepest first; lazily, so a busy mount cannot stop the clean-up.
  for m in $(awk -v d="$dir" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done
}

remove_network_namespaces() {
  local path ns
  for path in /var/run/netns/cni-*; do
    # Only pod namespaces made while this cluster ran (up.sh lists those
    # before it), or with an address on our bridge's subnet.
    [[ -e $path ]] || continue
    ns="${path##*/}"
    if { [[ -f $STATE_DIR/netns.before ]] && ! grep -qxF "$ns" "$STATE_DIR/netns.before"; } ||
      ip netns exec "$ns" ip -4 addr 2>/dev/null | grep -qF "inet ${POD_CIDR%.*}."; then
      umount -l "/var/run/netns/$ns" 2>/dev/null || true
      rm -f "/var/run/netns/$ns"
    fi
  done
}

# Removes every iptables rule and chain that kube-proxy, the kubelet, CNI or
# this script made, and nothing else.
clean_iptables() {
  local cmd table
  for cmd in iptables ip6tables; do
    command -v "$cmd" >/dev/null || continue
    if [[ -x $K8S_BIN/kube-proxy ]]; then "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
    if [[ -x $NETPOL_BIN/kube-router ]]; then "$NETPOL_BIN/kube-router" --cleanup-config >/dev/null 2>&1 || true; fi
    for table in filter nat mangle raw; do
      "$cmd-save" -t "$table" 2>/dev/null | grep -qE 'KUBE-|CNI-|aks-ray-cluster' || continue
      "$cmd-save" -t "$table" | grep -vE -- '-j (KUBE|CNI)-|^:(KUBE|CNI)-|^-A (KUBE|CNI)-|aks-ray-cluster' |
        "$cmd-restore" -T "$table" || log "could not clean $cmd table $table"
    done
  done
}

# kube-router's ipsets (its --cleanup-config leaves none when it runs; this is for when it could not).
remove_ipsets() {
  command -v ipset >/dev/null || return 0
  local set try
  # The kernel lets go of a set some time after the last iptables rule naming it is gone: retry a little.
  for set in $(ipset list -n 2>/dev/null | grep -E '^(KUBE-|kube-router)' || true); do
    for try in 1 2 3 4 5 6 7 8 9 10; do
      ipset destroy "$set" 2>/dev/null && break
      ((try == 10)) && log "could not remove ipset $set (still in use?)"
      sleep 0.5
    done
  done
}

remove_cgroups() {
  local hierarchy dir
  for hierarchy in /sys/fs/cgroup/*/; do
    for dir in "$hierarchy"kubepods "$hierarchy"kubepods.slice; do
      [[ -d $dir ]] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
    done
  done
  return 0
}

main() {
  [[ $(id -u) == 0 ]] || die "run as root"
  stop_daemons kubelet
  remove_containers
  stop_daemons kube-router kube-proxy containerd kube-scheduler kube-controller-manager kube-apiserver
  stop_daemons etcd
  kill_leftovers
  remove_network_namespaces
  unmount_under "$RUN_DIR/"
  unmount_under "$STATE_DIR/"
  unmount_under "$CONTAINERD_ROOT/"
  clean_iptables
  remove_ipsets
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE"; fi
  if [[ -f $STATE_DIR/ip_forward.orig ]]; then cat "$STATE_DIR/ip_forward.orig" >/proc/sys/net/ipv4/ip_forward; fi
  remove_cgroups
  # Keep the logs of the last run for diagnosis; drop everything else.
  if [[ -d $STATE_DIR ]]; then
    rm -rf "$STATE_DIR.last-logs"
    if [[ -d $LOG_DIR ]]; then mv "$LOG_DIR" "$STATE_DIR.last-logs"; fi
    rm -rf "$STATE_DIR"
  fi
  rm -rf "$RUN_DIR"
  log "cluster down"
}

main "$@"
