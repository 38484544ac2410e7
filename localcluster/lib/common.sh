# shellcheck shell=bash disable=SC2034  # (settings used by the files that source this one)
# Shared settings and helpers of localcluster/cluster.sh (sourced, not executed).

LC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)   # localcluster/
REPO_ROOT=$(cd "$LC_DIR/.." && pwd)
STATE=${SHMFIX_STATE:-$REPO_ROOT/.localcluster}
CACHE=${SHMFIX_CACHE:-$HOME/.cache/shmfix}

gomod_version() { awk -v m="$2" '($1=="require" && $2==m) {print $3} ($1==m) {print $2}' "$1/go.mod" | head -1; }
K8S_VERSION=$(gomod_version "$LC_DIR/gomod/k8s-v1.34" k8s.io/kubernetes)        # sized node + control plane
K8S_OLD_VERSION=$(gomod_version "$LC_DIR/gomod/k8s-v1.31" k8s.io/kubernetes)    # eviction node's kubelet
ETCD_VERSION=$(gomod_version "$LC_DIR/gomod/etcd" go.etcd.io/etcd/server/v3)
K8S_BIN=$CACHE/k8s-$K8S_VERSION/bin
K8S_OLD_BIN=$CACHE/k8s-$K8S_OLD_VERSION/bin
ETCD_BIN=$CACHE/etcd-$ETCD_VERSION/bin

# Ports: all on 127.0.0.1, none of them a Kubernetes/etcd default, so a stray default cluster
# on the machine does not collide. Keep README.md in sync.
ETCD_CLIENT_PORT=23790
ETCD_PEER_PORT=23800
APISERVER_PORT=16443
CONTROLLER_MANAGER_PORT=20257
SCHEDULER_PORT=20259
APISERVER_URL=https://127.0.0.1:$APISERVER_PORT
# Flags of the main API server after the common ones; of the controller-manager and the scheduler.
# MutatingAdmissionPolicy is beta in 1.34: feature gate + runtime-config v1beta1. (The current
# cluster, lib/current.sh, rebinds both.)
APISERVER_EXTRA_FLAGS=(--feature-gates MutatingAdmissionPolicy=true --runtime-config admissionregistration.k8s.io/v1beta1=true)
CONTROLLERS_EXTRA_FLAGS=()
# The kubeconfig context of $STATE/kubeconfig that kubectl_admin uses.
KUBE_CONTEXT=shmfix-local

# The two nodes. Fields: name kubelet-version kubelet-port healthz-port bridge subnet-prefix mode
NODES=(shmfix-sized shmfix-eviction)
declare -A NODE_MODE=([shmfix-sized]=sized [shmfix-eviction]=eviction)
declare -A NODE_KUBELET_PORT=([shmfix-sized]=20250 [shmfix-eviction]=20350)
declare -A NODE_HEALTHZ_PORT=([shmfix-sized]=20248 [shmfix-eviction]=20348)
declare -A NODE_BRIDGE=([shmfix-sized]=shmfix-br1 [shmfix-eviction]=shmfix-br2)
declare -A NODE_NET=([shmfix-sized]=10.244.1 [shmfix-eviction]=10.244.2)   # <net>.0/24, gateway <net>.1
# Extra lines appended to a node's kubelet-config.yaml (the current cluster's node sets its own).
declare -A NODE_KUBELET_EXTRA=()
# Another kubelet binary for a node (the current cluster's node may set one).
declare -A NODE_KUBELET_BIN=()
node_kubelet_bin() {
  if [ -n "${NODE_KUBELET_BIN[$1]:-}" ]; then echo "${NODE_KUBELET_BIN[$1]}"
  elif [ "$1" = shmfix-eviction ]; then echo "$K8S_OLD_BIN/kubelet"
  else echo "$K8S_BIN/kubelet"; fi
}
node_dir() { echo "$STATE/nodes/$1"; }
containerd_sock() { echo "$STATE/run/containerd-$1.sock"; }

# Host-wide resources (node cgroup roots, bridges, /etc/hosts names) are shared by every clone
# of the repository on this machine; this file names the state dir of the clone that owns them.
OWNER_FILE=/run/shmfix-localcluster.owner
owner_state() { cat "$OWNER_FILE" 2>/dev/null || true; }

IMAGES=(localhost/shmfix/busybox:local localhost/shmfix/pause:local)
PAUSE_IMAGE=localhost/shmfix/pause:local
# Debian packages the cluster needs (installed by `cluster.sh build` when missing).
DEB_PACKAGES=(containerd runc containernetworking-plugins iptables busybox-static gcc libc6-dev openssl curl iproute2 time)

log() { printf '%s cluster: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'cluster: ERROR: %s\n' "$*" >&2; exit 1; }

# --- processes started by this script: one pid file per component in $RUN_DIR -----------------
# RUN_DIR and LOG_DIR are where pid files and logs go; the fleet (lib/fleet.sh) rebinds them
# with `local` to its own directories, so these helpers serve both.
RUN_DIR=$STATE/run
LOG_DIR=$STATE/logs
pidfile() { echo "$RUN_DIR/$1.pid"; }
# Echo the pid of component $1 if its pid file names a live process running the expected binary
# (guards against a recycled pid), else nothing.
component_pid() {
  local f pid exe want
  f=$(pidfile "$1")
  [ -s "$f" ] || return 0
  read -r pid want < "$f" || true
  [ -n "${pid:-}" ] && pid_alive "$pid" || return 0
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  exe=${exe% (deleted)}
  if [ -z "${want:-}" ] || [ "$exe" = "$want" ]; then echo "$pid"; fi
}
# Start a long-running component detached (own session), logging to $LOG_DIR/<name>.log.
start_component() {
  local name=$1 bin=$2; shift 2
  [ -x "$bin" ] || die "$name: binary $bin missing; run: localcluster/cluster.sh build"
  mkdir -p "$LOG_DIR" "$RUN_DIR"
  printf '\n==== %s start %s: %s %s\n' "$(date -u +%FT%TZ)" "$name" "$bin" "$*" >> "$LOG_DIR/$name.log"
  setsid "$bin" "$@" >> "$LOG_DIR/$name.log" 2>&1 < /dev/null 9>&- &
  echo "$! $bin" > "$(pidfile "$name")"
}
# A process that exists and is not a zombie (our detached processes are reaped by pid 1, which
# may take a moment).
pid_alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}
# SIGTERM, wait up to $2 seconds, then SIGKILL.
stop_pid() {
  local pid=$1 timeout=${2:-15} name=${3:-pid}
  kill -TERM "$pid" 2>/dev/null || return 0
  local i
  for ((i = 0; i < timeout * 10; i++)); do pid_alive "$pid" || return 0; sleep 0.1; done
  log "$name (pid $pid) ignored SIGTERM for ${timeout}s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do pid_alive "$pid" || return 0; sleep 0.1; done
  log "WARNING: $name (pid $pid) still present after SIGKILL"
}
stop_component() {
  local pid
  pid=$(component_pid "$1")
  if [ -n "$pid" ]; then log "stopping $1 (pid $pid)"; stop_pid "$pid" "${2:-15}" "$1"; fi
  rm -f "$(pidfile "$1")"
}

# Fail with the owner's name when a TCP port on 127.0.0.1 (or any address) is already listening.
# $3: what to run if the owner is a leftover of ours (default: cluster.sh down).
check_port_free() {
  local port=$1 what=$2 line
  local leftover=${3:-localcluster/cluster.sh down}
  line=$(ss -ltnpH "sport = :$port" 2>/dev/null | head -1)
  [ -z "$line" ] && return 0
  die "port $port (for $what) is already in use: $(echo "$line" | grep -o 'users:.*' || echo "$line"). Stop that process, or if it is a leftover of this cluster run: $leftover"
}

# Wait until "$@" succeeds, at most $1 seconds; $2 names the thing for the error message.
wait_for() {
  local timeout=$1 what=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then return 1; fi
    sleep 1
  done
}

kubectl_admin() { "$STATE/bin/kubectl" --kubeconfig "$STATE/kubeconfig" --context "$KUBE_CONTEXT" "$@"; }
curl_admin() { curl -sS --max-time 5 --cacert "$STATE/pki/ca.crt" --cert "$STATE/pki/admin.crt" --key "$STATE/pki/admin.key" "$@"; }
