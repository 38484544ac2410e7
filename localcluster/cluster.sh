#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The embedded default cluster: a real Kubernetes built from source, on this machine only.
#
#   localcluster/cluster.sh build    install Debian packages if missing; build (or reuse from
#                                    ~/.cache/shmfix) etcd, Kubernetes and the local images
#   localcluster/cluster.sh up       start it (idempotent; a half-dead cluster is cleaned first)
#   localcluster/cluster.sh down     stop what `up` started (pid files), unmount its volumes
#   localcluster/cluster.sh status   components, nodes, versions
#   localcluster/cluster.sh build-current | up-current | down-current | status-current
#                                    the current cluster: Kubernetes v1.37 with its own etcd,
#                                    control plane and node shmfix-current (lib/current.sh)
#   localcluster/cluster.sh fleet-up N | fleet-down | fleet-status
#                                    N extra control planes (apiserver + controller-manager) on
#                                    this cluster's etcd (lib/fleet.sh; make fleet-up FLEET=8)
#
# State lives in <repo>/.localcluster (kubeconfig, logs/, run/, pki/, nodes/). See README.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/pki.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/node.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/etcd.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/fleet-pki.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/fleet.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib/current.sh"

CONTROL_PLANE=(etcd kube-apiserver kube-controller-manager kube-scheduler)

require_root() { [ "$(id -u)" = 0 ] || die "must run as root (containerd, kubelets, mounts, cgroups, bridges)"; }

# ------------------------------------------------------------------------------------- build --
ensure_packages() {
  local missing=() p
  for p in "${DEB_PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || missing+=("$p")
  done
  [ ${#missing[@]} = 0 ] && return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get; install them by hand"
  log "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Run a build step under /usr/bin/time -v (wall clock and peak RSS saved next to the binary).
timed() {
  local rusage=$1; shift
  if [ -x /usr/bin/time ]; then /usr/bin/time -v -o "$rusage" "$@"; else "$@"; fi
}

build_k8s() {
  local wrapper=$1 out=$2 cmd; shift 2
  mkdir -p "$out"
  for cmd in "$@"; do
    [ -x "$out/$cmd" ] && continue
    timed "$out/$cmd.rusage" "$LC_DIR/scripts/build-k8s.sh" "$wrapper" "$out" "$cmd"
  done
}

build_etcd() {
  [ -x "$ETCD_BIN/etcd" ] && return 0
  command -v go >/dev/null || die "go is not installed; etcd and Kubernetes are built from the Go module proxy (Go >= 1.26)"
  mkdir -p "$ETCD_BIN"
  log "building etcd $ETCD_VERSION (log: $ETCD_BIN/build.log)"
  local start=$SECONDS
  if ! (cd "$LC_DIR/gomod/etcd" && timed "$ETCD_BIN/etcd.rusage" env CGO_ENABLED=0 GOFLAGS=-mod=mod \
        go build -trimpath -ldflags "-s -w" -o "$ETCD_BIN/etcd.tmp" go.etcd.io/etcd/server/v3) >> "$ETCD_BIN/build.log" 2>&1; then
    tail -n 30 "$ETCD_BIN/build.log" >&2
    die "building etcd $ETCD_VERSION failed; last lines of $ETCD_BIN/build.log above"
  fi
  mv "$ETCD_BIN/etcd.tmp" "$ETCD_BIN/etcd"
  log "built etcd in $((SECONDS - start))s"
}

# Images are keyed by a hash of everything that goes into them.
image_dir() {
  local h
  h=$( { cat "$LC_DIR/scripts/build-images.py" "$LC_DIR/images/pause.c" "$LC_DIR/images/shm-mmap.c"; dpkg-query -W -f='${Version}' busybox-static; } | sha256sum | cut -c1-12)
  echo "$CACHE/images-$h"
}

build_images() {
  IMAGE_DIR=$(image_dir)
  [ -s "$IMAGE_DIR/busybox.tar" ] && [ -s "$IMAGE_DIR/pause.tar" ] && return 0
  [ -x /bin/busybox ] || die "/bin/busybox missing; apt-get install busybox-static"
  log "building images into $IMAGE_DIR"
  mkdir -p "$IMAGE_DIR"
  gcc -static -Os -s -o "$IMAGE_DIR/pause" "$LC_DIR/images/pause.c" || die "compiling pause.c failed (needs gcc and libc6-dev)"
  gcc -static -Os -s -o "$IMAGE_DIR/shm-mmap" "$LC_DIR/images/shm-mmap.c" || die "compiling shm-mmap.c failed (needs gcc and libc6-dev)"
  python3 "$LC_DIR/scripts/build-images.py" "$IMAGE_DIR" /bin/busybox "$IMAGE_DIR/pause" "$IMAGE_DIR/shm-mmap" >&2
}

# A running cluster gets the images of this checkout (a changed image has a new cache key): the
# import only retags, running containers keep the image they started with.
refresh_images() {
  local node
  build_images
  for node in "${NODES[@]}"; do node_import_images "$node"; done
  log "images of $IMAGE_DIR imported into the containerd of ${NODES[*]}"
}

cmd_build() {
  require_root
  ensure_packages
  command -v go >/dev/null || die "go is not installed; etcd and Kubernetes are built from the Go module proxy (Go >= 1.26)"
  build_etcd
  build_k8s "$LC_DIR/gomod/k8s-v1.34" "$K8S_BIN" kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl
  build_k8s "$LC_DIR/gomod/k8s-v1.31" "$K8S_OLD_BIN" kubelet
  build_images
  mkdir -p "$STATE/bin"
  ln -sfn "$K8S_BIN/kubectl" "$STATE/bin/kubectl"
  log "binaries: etcd $ETCD_VERSION, kubernetes $K8S_VERSION (+ kubelet $K8S_OLD_VERSION), images in $IMAGE_DIR"
}

# ----------------------------------------------------------------------------------------- up --
ensure_hosts() {
  local node missing=()
  for node in "${NODES[@]}"; do
    [ "$(getent ahostsv4 "$node" 2>/dev/null | awk 'NR==1{print $1}')" = 127.0.0.1 ] || missing+=("$node")
  done
  [ ${#missing[@]} = 0 ] && return 0
  # The API server reaches each kubelet at its InternalIP (the node bridge address), falling back to the node name.
  log "adding '127.0.0.1 ${missing[*]}' to /etc/hosts (node names must resolve to loopback)"
  echo "127.0.0.1 ${missing[*]} # shmfix.k8s localcluster" >> /etc/hosts
}

start_etcd() {
  check_port_free "$ETCD_CLIENT_PORT" etcd
  check_port_free "$ETCD_PEER_PORT" "etcd peer"
  mkdir -p "$STATE/etcd"
  chmod 700 "$STATE/etcd"
  start_component etcd "$ETCD_BIN/etcd" \
    --name shmfix --data-dir "$STATE/etcd/data" \
    --listen-client-urls "https://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls "https://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "shmfix=http://127.0.0.1:$ETCD_PEER_PORT" \
    --cert-file "$STATE/pki/etcd-server.crt" --key-file "$STATE/pki/etcd-server.key" \
    --client-cert-auth --trusted-ca-file "$STATE/pki/ca.crt" \
    --log-level warn
  wait_or_fail 60 etcd curl -sf --max-time 3 --cacert "$STATE/pki/ca.crt" --cert "$STATE/pki/apiserver-etcd-client.crt" \
    --key "$STATE/pki/apiserver-etcd-client.key" "https://127.0.0.1:$ETCD_CLIENT_PORT/health"
}

start_apiserver() {
  local p=$STATE/pki
  check_port_free "$APISERVER_PORT" kube-apiserver
  start_component kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers "https://127.0.0.1:$ETCD_CLIENT_PORT" \
    --etcd-cafile "$p/ca.crt" --etcd-certfile "$p/apiserver-etcd-client.crt" --etcd-keyfile "$p/apiserver-etcd-client.key" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" --client-ca-file "$p/ca.crt" \
    --kubelet-client-certificate "$p/apiserver-kubelet-client.crt" --kubelet-client-key "$p/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP,Hostname \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --endpoint-reconciler-type none \
    --allow-privileged=true --profiling=false \
    "${APISERVER_EXTRA_FLAGS[@]}"
  wait_or_fail 120 kube-apiserver curl_admin -f "$APISERVER_URL/readyz"
}

start_controllers() {
  local p=$STATE/pki
  check_port_free "$CONTROLLER_MANAGER_PORT" kube-controller-manager
  check_port_free "$SCHEDULER_PORT" kube-scheduler
  start_component kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$STATE/kubeconfigs/controller-manager" \
    --authentication-kubeconfig "$STATE/kubeconfigs/controller-manager" \
    --authorization-kubeconfig "$STATE/kubeconfigs/controller-manager" \
    --bind-address 127.0.0.1 --secure-port "$CONTROLLER_MANAGER_PORT" --leader-elect=false \
    --root-ca-file "$p/ca.crt" --service-account-private-key-file "$p/sa.key" --use-service-account-credentials \
    --cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key" \
    --service-cluster-ip-range 10.96.0.0/16 --profiling=false "${CONTROLLERS_EXTRA_FLAGS[@]}"
  start_component kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$STATE/kubeconfigs/scheduler" \
    --authentication-kubeconfig "$STATE/kubeconfigs/scheduler" \
    --authorization-kubeconfig "$STATE/kubeconfigs/scheduler" \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false --profiling=false "${CONTROLLERS_EXTRA_FLAGS[@]}"
  wait_or_fail 60 kube-controller-manager curl -skf --max-time 3 "https://127.0.0.1:$CONTROLLER_MANAGER_PORT/healthz"
  wait_or_fail 60 kube-scheduler curl -skf --max-time 3 "https://127.0.0.1:$SCHEDULER_PORT/healthz"
}

# wait_or_fail <timeout> <component> <probe...>: on timeout or if the component died, show its log.
wait_or_fail() {
  local timeout=$1 name=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ -z "$(component_pid "$name")" ]; then
      tail -n 30 "$STATE/logs/$name.log" >&2
      die "$name exited during start-up; last lines of $STATE/logs/$name.log above"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 30 "$STATE/logs/$name.log" >&2
      die "$name not healthy after ${timeout}s; last lines of $STATE/logs/$name.log above"
    fi
    sleep 1
  done
  log "$name is up (pid $(component_pid "$name"))"
}

# node_ready <node> [since]: Ready=True, and (with since, an ISO-8601 UTC time) reported by a
# kubelet heartbeat at or after it; a restarted cluster still shows the old kubelet's status.
node_ready() {
  local out status beat
  out=$(kubectl_admin get node "$1" -o jsonpath='{range .status.conditions[?(@.type=="Ready")]}{.status} {.lastHeartbeatTime}{end}' 2>/dev/null) || return 1
  read -r status beat <<< "$out"
  [ "$status" = True ] && { [ -z "${2:-}" ] || [[ ! "$beat" < "$2" ]]; }
}

wait_nodes_ready() {
  local since=$1 node deadline=$((SECONDS + 180)) pending
  while :; do
    pending=()
    for node in "${NODES[@]}"; do
      [ -n "$(component_pid "kubelet-$node")" ] || { tail -n 40 "$STATE/logs/kubelet-$node.log" >&2; die "kubelet of $node exited; last lines of $STATE/logs/kubelet-$node.log above"; }
      node_ready "$node" "$since" || pending+=("$node")
    done
    [ ${#pending[@]} = 0 ] && break
    if ((SECONDS >= deadline)); then
      for node in "${pending[@]}"; do
        echo "---- last lines of $STATE/logs/kubelet-$node.log" >&2
        tail -n 40 "$STATE/logs/kubelet-$node.log" >&2
      done
      die "node(s) ${pending[*]} not Ready after 180 s (kubelet logs above; kubectl describe node ${pending[0]})"
    fi
    sleep 2
  done
  log "nodes Ready: ${NODES[*]}"
}

# All components alive (pid files), API ready, nodes Ready.
cluster_healthy() {
  local c
  for c in $(all_components); do [ -n "$(component_pid "$c")" ] || return 1; done
  curl_admin -f "$APISERVER_URL/readyz" >/dev/null 2>&1 || return 1
  for c in "${NODES[@]}"; do node_ready "$c" || return 1; done
}

all_components() {
  local n
  echo "${CONTROL_PLANE[@]}"
  for n in "${NODES[@]}"; do echo "containerd-$n kubelet-$n"; done
}

# Anything left of an earlier run: a live component, a pid file, or a mount under $STATE.
cluster_leftovers() {
  local c out=()
  for c in $(all_components); do
    if [ -n "$(component_pid "$c")" ]; then out+=("$c:running"); elif [ -e "$(pidfile "$c")" ]; then out+=("$c:dead"); fi
  done
  [ -n "$(state_mounts)" ] && out+=("mounts:$(state_mounts | wc -l)")
  echo "${out[*]}"
}

# Pids recorded under another checkout's state dir $1 that still run the binary they recorded.
# A session that was killed leaves its pid files behind; those pids are dead and do not count.
live_pids_of() {
  local f pid want exe
  for f in "$1"/run/*.pid; do
    [ -s "$f" ] || continue
    read -r pid want < "$f" || true
    if [ -z "${pid:-}" ] || ! pid_alive "$pid"; then continue; fi
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    if [ -z "${want:-}" ] || [ "${exe% (deleted)}" = "$want" ]; then echo "$pid"; fi
  done
}

# Refuse to start while another clone's live cluster owns the node cgroups and bridges.
claim_host_resources() {
  local other
  other=$(owner_state)
  if [ -n "$other" ] && [ "$other" != "$STATE" ] && [ -n "$(live_pids_of "$other")" ]; then
    die "another checkout's embedded cluster ($other) is running on this machine; stop it first: $(dirname "$other")/localcluster/cluster.sh down"
  fi
  mkdir -p "$(dirname "$OWNER_FILE")"
  echo "$STATE" > "$OWNER_FILE"
}

cmd_up() {
  require_root
  local start=$SECONDS leftovers node
  if [ -d "$STATE/run" ] && cluster_healthy; then
    log "cluster already up and healthy; reusing it (kubeconfig: $STATE/kubeconfig)"
    refresh_images
    return 0
  fi
  leftovers=$(cluster_leftovers)
  if [ -n "$leftovers" ]; then
    log "found a half-running cluster ($leftovers); cleaning it up before starting again"
    cmd_down
  fi
  cmd_build
  IMAGE_DIR=$(image_dir)
  claim_host_resources
  ensure_hosts
  ensure_pki
  mkdir -p "$STATE/logs" "$STATE/run"
  local since
  since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  start_etcd
  start_apiserver
  start_controllers
  for node in "${NODES[@]}"; do
    node_cgroup_create "$node"
    node_bridge_create "$node"
    node_write_configs "$node"
    node_start_containerd "$node"
    node_import_images "$node"
    node_start_kubelet "$node"
  done
  wait_nodes_ready "$since"
  wait_for 60 "default ServiceAccount" kubectl_admin -n default get serviceaccount default ||
    die "the default ServiceAccount was not created within 60 s; see $STATE/logs/kube-controller-manager.log"
  log "cluster up in $((SECONDS - start))s; export KUBECONFIG=$STATE/kubeconfig (contexts shmfix-local, shmfix-local-alt)"
  kubectl_admin get nodes -o wide -L shmfix.io/node-mode >&2
}

# --------------------------------------------------------------------------------------- down --
# Mount points under $STATE, deepest first (mountinfo escapes spaces as \040).
state_mounts() {
  awk -v s="$STATE/" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sed 's/\\040/ /g' | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-
}

unmount_state() {
  local round m n
  for round in 1 2 3; do
    n=0
    while IFS= read -r m; do
      [ -n "$m" ] || continue
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
      n=$((n + 1))
    done < <(state_mounts)
    [ "$n" = 0 ] && return 0
    [ "$round" = 1 ] && log "unmounted $n mount(s) under $STATE"
  done
  [ -z "$(state_mounts)" ] || log "WARNING: mounts left under $STATE: $(state_mounts | tr '\n' ' ')"
}

cmd_down() {
  require_root
  local node c i owner host_owned=true
  owner=$(owner_state)
  if [ -n "$owner" ] && [ "$owner" != "$STATE" ]; then
    host_owned=false
    log "the node cgroups and bridges belong to the cluster of $owner; leaving them alone"
  fi
  # The fleet's control planes use this cluster's etcd: they go first.
  if [ -n "$(fleet_known)" ]; then
    fleet_stop_all
    [ "$FLEET_STOPPED" = 0 ] || log "stopped the fleet ($FLEET_STOPPED process(es)); make fleet-up FLEET=N starts it again after up"
  fi
  for node in "${NODES[@]}"; do node_stop "$node" "$host_owned"; done
  for ((i = ${#CONTROL_PLANE[@]} - 1; i >= 0; i--)); do stop_component "${CONTROL_PLANE[$i]}" 20; done
  unmount_state
  for node in "${NODES[@]}"; do
    # Runtime state only: pods get new sandboxes (and IPs) at the next `up`.
    rm -rf "$(node_dir "$node")/containerd/state" "$(node_dir "$node")/containerd/runc" "$(node_dir "$node")/cni/ipam"
    if $host_owned; then
      node_cgroup_remove "$node"
      node_bridge_remove "$node"
    fi
  done
  $host_owned && rm -f "$OWNER_FILE"
  for c in $(all_components); do [ -z "$(component_pid "$c")" ] || die "$c still running after down"; done
  log "cluster down (state kept in $STATE; make clean removes it)"
}

# ------------------------------------------------------------------------------------- status --
cmd_status() {
  local c pid rc=0
  printf '%-32s %s\n' COMPONENT STATE
  for c in $(all_components); do
    pid=$(component_pid "$c")
    if [ -n "$pid" ]; then printf '%-32s running (pid %s)\n' "$c" "$pid"; else printf '%-32s stopped\n' "$c"; rc=1; fi
  done
  if [ -s "$STATE/kubeconfig" ] && curl_admin -f "$APISERVER_URL/readyz" >/dev/null 2>&1; then
    echo
    echo "server: $(curl_admin "$APISERVER_URL/version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["gitVersion"])')  $APISERVER_URL  kubeconfig: $STATE/kubeconfig"
    kubectl_admin get nodes -L shmfix.io/node-mode \
      -o custom-columns='NODE:.metadata.name,READY:.status.conditions[?(@.type=="Ready")].status,KUBELET:.status.nodeInfo.kubeletVersion,RUNTIME:.status.nodeInfo.containerRuntimeVersion,MODE:.metadata.labels.shmfix\.io/node-mode,PORT:.status.daemonEndpoints.kubeletEndpoint.Port'
  else
    echo; echo "API server not reachable at $APISERVER_URL"; rc=1
  fi
  [ -z "$(state_mounts)" ] || { echo; echo "mounts under $STATE: $(state_mounts | wc -l)"; }
  return $rc
}

# One build/up/down at a time (several people and test sessions share the cluster); the started
# components do not inherit the lock's descriptor (start_component closes it).
lock_cluster() {
  mkdir -p "$STATE"
  exec 9> "$STATE/.cluster.lock"
  flock -w 900 9 || die "another cluster.sh build/up/down has held $STATE/.cluster.lock for 15 min"
}

# The current cluster has its own lock: starting it never waits for the main cluster's up/down.
lock_current() {
  mkdir -p "$CURRENT_STATE"
  exec 9> "$CURRENT_STATE/.cluster.lock"
  flock -w 900 9 || die "another cluster.sh build-current/up-current/down-current has held $CURRENT_STATE/.cluster.lock for 15 min"
}

case "${1:-}" in
  build) lock_cluster; cmd_build ;;
  up) lock_cluster; cmd_up ;;
  down) lock_cluster; cmd_down ;;
  status) cmd_status ;;
  fleet-up) fleet_check_size "${2:-}"; lock_cluster; cmd_fleet_up "$2" ;;
  fleet-down) lock_cluster; cmd_fleet_down ;;
  fleet-status) cmd_fleet_status ;;
  build-current) lock_current; cmd_current_build ;;
  up-current) lock_current; cmd_current_up ;;
  down-current) lock_current; cmd_current_down ;;
  status-current) cmd_current_status ;;
  *) echo "usage: $0 build|up|down|status|fleet-up N|fleet-down|fleet-status|build-current|up-current|down-current|status-current" >&2; exit 2 ;;
esac
