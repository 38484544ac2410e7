# shellcheck shell=bash
# The fleet: extra control planes (kube-apiserver + kube-controller-manager, no scheduler, no
# kubelets) that share the main cluster's etcd, each under its own --etcd-prefix, on its own
# loopback port, with its own CA, certificates and service-account key pair (fleet-pki.sh).
# Sourced by cluster.sh (fleet-up N | fleet-down | fleet-status); needs common.sh, pki.sh,
# etcd.sh and fleet-pki.sh.
#
# Pid files and logs go through common.sh's helpers with RUN_DIR/LOG_DIR rebound (`local`) to
# the fleet's own directories: the main cluster's run/ and logs/ stay as they were.

FLEET_DIR=$STATE/fleet
FLEET_RUN=$FLEET_DIR/run
FLEET_LOGS=$FLEET_DIR/logs
FLEET_KUBECONFIG=$FLEET_DIR/kubeconfig
# Ports on 127.0.0.1 (none used by the main cluster, see common.sh; below the ephemeral range):
# shmfix-fleet-<i> serves its API on 17100+i and its controller-manager's /healthz on 17200+i.
FLEET_APISERVER_PORT_BASE=17100
FLEET_CM_PORT_BASE=17200
FLEET_MAX=99
FLEET_ETCD_PREFIX=/registry-fleet-   # shmfix-fleet-<i> stores its objects under /registry-fleet-<i>/
FLEET_TIMEOUT=${FLEET_TIMEOUT:-180}  # seconds each wait of fleet-up may take (all clusters start in parallel)
FLEET_COMPONENTS=(kube-apiserver kube-controller-manager)

fleet_name() { echo "shmfix-fleet-$1"; }
fleet_cluster_dir() { echo "$FLEET_DIR/shmfix-fleet-$1"; }
fleet_apiserver_port() { echo $((FLEET_APISERVER_PORT_BASE + $1)); }
fleet_cm_port() { echo $((FLEET_CM_PORT_BASE + $1)); }
fleet_etcd_prefix() { echo "$FLEET_ETCD_PREFIX$1"; }
fleet_log() { echo "$FLEET_LOGS/$(fleet_name "$1")-$2.log"; }
fleet_pidfile() { echo "$FLEET_RUN/$(fleet_name "$1")-$2.pid"; }
# fleet_pid <i> <component>: the live pid recorded in its pid file (common.sh's component_pid), or nothing.
fleet_pid() {
  local RUN_DIR=$FLEET_RUN
  component_pid "$(fleet_name "$1")-$2"
}
fleet_any_running() {
  local c
  for c in "${FLEET_COMPONENTS[@]}"; do [ -n "$(fleet_pid "$1" "$c")" ] && return 0; done
  return 1
}
# "shmfix-fleet-1, shmfix-fleet-2" (or "none")
fleet_names() {
  local i joined=""
  for i in "$@"; do joined+="$(fleet_name "$i"), "; done
  joined=${joined:-none, }
  echo "${joined%, }"
}

# Indices of the fleet clusters this checkout knows of (a state directory or a pid file).
fleet_known() {
  local d f
  {
    for d in "$FLEET_DIR"/shmfix-fleet-*/; do if [ -d "$d" ]; then basename "$d"; fi; done
    for f in "$FLEET_RUN"/shmfix-fleet-*.pid; do if [ -e "$f" ]; then basename "$f"; fi; done
  } | sed -n 's/^shmfix-fleet-\([0-9][0-9]*\).*/\1/p' | sort -nu
}

# fleet_check_size <N>: N must be an integer in 1..FLEET_MAX (the port ranges hold 99 clusters).
fleet_check_size() {
  local n=${1:-}
  if ! [[ "$n" =~ ^[0-9]+$ ]] || ((10#$n < 1)); then
    die "FLEET must be a positive integer (the number of extra clusters), got '$n'; e.g. make fleet-up FLEET=8"
  fi
  ((10#$n <= FLEET_MAX)) || die "FLEET=$n is too large: at most $FLEET_MAX fleet clusters (ports $((FLEET_APISERVER_PORT_BASE + 1))-$((FLEET_APISERVER_PORT_BASE + FLEET_MAX)))"
}

fleet_require_etcd() {
  local pid
  pid=$(component_pid etcd)
  [ -n "$pid" ] ||
    die "the main cluster is not up (no running etcd in $(pidfile etcd)); the fleet keeps its data in the main cluster's etcd: run make cluster-up first"
  etcd_healthy ||
    die "the main cluster's etcd (pid $pid) does not answer on $ETCD_URL/health; run make cluster-up first (it repairs a half-running cluster)"
}

# Probes (quiet; exit status only).
fleet_curl() {
  local pki
  pki=$(fleet_cluster_dir "$1")/pki
  shift
  curl -sS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$@"
}
fleet_apiserver_ready() { fleet_curl "$1" -f "https://127.0.0.1:$(fleet_apiserver_port "$1")/readyz" >/dev/null 2>&1; }
fleet_cm_healthy() { curl -skf --max-time 3 "https://127.0.0.1:$(fleet_cm_port "$1")/healthz" >/dev/null 2>&1; }
fleet_kubectl() { "$STATE/bin/kubectl" --kubeconfig "$FLEET_KUBECONFIG" --context "$(fleet_name "$1")" "${@:2}"; }
fleet_has_default_sa() { fleet_kubectl "$1" -n default get serviceaccount default >/dev/null 2>&1; }

fleet_start_apiserver() {
  local i=$1 name p m=$STATE/pki
  local RUN_DIR=$FLEET_RUN LOG_DIR=$FLEET_LOGS
  name=$(fleet_name "$i")
  p=$(fleet_cluster_dir "$i")/pki
  start_component "$name-kube-apiserver" "$K8S_BIN/kube-apiserver" \
    --etcd-servers "$ETCD_URL" --etcd-prefix "$(fleet_etcd_prefix "$i")" \
    --etcd-cafile "$m/ca.crt" --etcd-certfile "$m/apiserver-etcd-client.crt" --etcd-keyfile "$m/apiserver-etcd-client.key" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$(fleet_apiserver_port "$i")" \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" --client-ca-file "$p/ca.crt" \
    --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --endpoint-reconciler-type none \
    --allow-privileged=true --profiling=false
}

# Every on-by-default controller (deployment, replicaset, statefulset, daemonset, namespace,
# serviceaccount, garbage collector, ...): rollouts of replicas-0 workloads complete without nodes.
fleet_start_controller_manager() {
  local i=$1 name p kc
  local RUN_DIR=$FLEET_RUN LOG_DIR=$FLEET_LOGS
  name=$(fleet_name "$i")
  p=$(fleet_cluster_dir "$i")/pki
  kc=$(fleet_cluster_dir "$i")/kubeconfigs/controller-manager
  start_component "$name-kube-controller-manager" "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$kc" --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
    --bind-address 127.0.0.1 --secure-port "$(fleet_cm_port "$i")" --leader-elect=false \
    --root-ca-file "$p/ca.crt" --service-account-private-key-file "$p/sa.key" --use-service-account-credentials \
    --cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key" \
    --service-cluster-ip-range 10.96.0.0/16 --profiling=false
}

# fleet_wait <failure> <component> <probe> <i>...: wait (all clusters at once, FLEET_TIMEOUT s)
# until `<probe> i` succeeds for every i; fail naming the cluster and its log when <component>
# dies or the time is up (<failure>: what is wrong then, e.g. "kube-apiserver not ready").
fleet_wait() {
  local failure=$1 comp=$2 probe=$3; shift 3
  local deadline=$((SECONDS + FLEET_TIMEOUT)) pending=("$@") left i log
  while [ ${#pending[@]} -gt 0 ]; do
    left=()
    for i in "${pending[@]}"; do
      "$probe" "$i" && continue
      if [ -z "$(fleet_pid "$i" "$comp")" ]; then
        log=$(fleet_log "$i" "$comp")
        tail -n 30 "$log" >&2
        die "$(fleet_name "$i"): $comp exited before it was healthy; last lines of $log above (a second make fleet-up starts it again)"
      fi
      left+=("$i")
    done
    pending=("${left[@]}")
    [ ${#pending[@]} = 0 ] && break
    if ((SECONDS >= deadline)); then
      for i in "${pending[@]}"; do
        echo "---- last lines of $(fleet_log "$i" "$comp")" >&2
        tail -n 20 "$(fleet_log "$i" "$comp")" >&2
      done
      local logs=""
      for i in "${pending[@]}"; do logs+=" $(fleet_log "$i" "$comp")"; done
      die "$(fleet_names "${pending[@]}"): $failure after ${FLEET_TIMEOUT}s (FLEET_TIMEOUT); last lines above, logs:$logs"
    fi
    sleep 1
  done
}

# fleet_drop_stale <i>: remove pid files whose process is gone (a killed session, a crash), saying so.
fleet_drop_stale() {
  local i=$1 c f pid
  for c in "${FLEET_COMPONENTS[@]}"; do
    f=$(fleet_pidfile "$i" "$c")
    if [ ! -e "$f" ] || [ -n "$(fleet_pid "$i" "$c")" ]; then continue; fi
    read -r pid _ < "$f" || true
    log "$(fleet_name "$i"): stale pid file $f (pid ${pid:-?} is not running $c); removing it"
    rm -f "$f"
  done
}

cmd_fleet_up() {
  local n=$((10#$1)) start=$SECONDS i name
  local kept=() new=() repaired=() beyond=() need_api=() need_cm=()
  fleet_require_etcd
  [ -x "$STATE/bin/kubectl" ] || die "$STATE/bin/kubectl missing; run make cluster-up first"
  mkdir -p "$FLEET_RUN" "$FLEET_LOGS"
  for ((i = 1; i <= n; i++)); do fleet_ensure_pki "$i"; done
  for i in $(fleet_known); do
    if ((i > n)) && fleet_any_running "$i"; then beyond+=("$i"); fi
  done
  # Check every cluster (and every port) before starting anything.
  for ((i = 1; i <= n; i++)); do
    name=$(fleet_name "$i")
    fleet_drop_stale "$i"
    local api cm
    api=$(fleet_pid "$i" kube-apiserver)
    cm=$(fleet_pid "$i" kube-controller-manager)
    if [ -n "$api" ] && [ -n "$cm" ]; then kept+=("$i"); continue; fi
    if [ -n "$api$cm" ]; then repaired+=("$i"); else new+=("$i"); fi
    if [ -z "$api" ]; then
      check_port_free "$(fleet_apiserver_port "$i")" "$name kube-apiserver" "make fleet-down"
      need_api+=("$i")
    else
      log "$name: kube-apiserver (pid $api) running, kube-controller-manager not; starting it"
    fi
    if [ -z "$cm" ]; then
      check_port_free "$(fleet_cm_port "$i")" "$name kube-controller-manager" "make fleet-down"
      need_cm+=("$i")
    else
      log "$name: kube-controller-manager (pid $cm) running, kube-apiserver not; starting it"
    fi
  done
  # One kubeconfig for every fleet cluster this checkout has certificates for.
  local ctx=()
  for i in $(fleet_known); do
    if [ -s "$(fleet_cluster_dir "$i")/pki/admin.crt" ]; then ctx+=("$i"); fi
  done
  fleet_write_kubeconfig "$FLEET_KUBECONFIG" admin "${ctx[@]}"

  log "fleet: FLEET=$n; keeping ${#kept[@]} running cluster(s) ($(fleet_names "${kept[@]}")); starting ${#new[@]} ($(fleet_names "${new[@]}"))${repaired:+; repairing ${#repaired[@]} ($(fleet_names "${repaired[@]}"))}"
  [ ${#beyond[@]} = 0 ] || log "fleet: also running beyond FLEET=$n and kept: $(fleet_names "${beyond[@]}") (make fleet-down stops the whole fleet)"
  for i in "${need_api[@]}"; do
    log "$(fleet_name "$i"): starting kube-apiserver on https://127.0.0.1:$(fleet_apiserver_port "$i") (etcd prefix $(fleet_etcd_prefix "$i"))"
    fleet_start_apiserver "$i"
  done
  local all=()
  for ((i = 1; i <= n; i++)); do all+=("$i"); done
  fleet_wait "kube-apiserver not ready (/readyz)" kube-apiserver fleet_apiserver_ready "${all[@]}"
  for i in "${need_cm[@]}"; do fleet_start_controller_manager "$i"; done
  fleet_wait "kube-controller-manager not healthy (/healthz)" kube-controller-manager fleet_cm_healthy "${all[@]}"
  # The controller-manager's controllers work once it has created the default ServiceAccount.
  [ ${#need_cm[@]} = 0 ] ||
    fleet_wait "no default ServiceAccount (kube-controller-manager creates it)" kube-controller-manager fleet_has_default_sa "${need_cm[@]}"
  log "fleet up in $((SECONDS - start))s: $n cluster(s) healthy ($(fleet_names "${all[@]}")); export KUBECONFIG=$FLEET_KUBECONFIG (contexts $(fleet_name "${ctx[0]}")..$(fleet_name "${ctx[-1]}"))"
}

# Stop every fleet process recorded in a pid file (SIGTERM to all at once, SIGKILL after 20 s).
fleet_stop_all() {
  # shellcheck disable=SC2034  # read by component_pid, pidfile and stop_pid (common.sh)
  local RUN_DIR=$FLEET_RUN LOG_DIR=$FLEET_LOGS
  local i c comp pid bg=() n=0
  for i in $(fleet_known); do
    fleet_drop_stale "$i"
    for comp in "${FLEET_COMPONENTS[@]}"; do
      c="$(fleet_name "$i")-$comp"
      pid=$(component_pid "$c")
      [ -n "$pid" ] || continue
      log "stopping $c (pid $pid)"
      stop_pid "$pid" 20 "$c" &
      bg+=($!)
      n=$((n + 1))
    done
  done
  [ ${#bg[@]} = 0 ] || wait "${bg[@]}" || true
  for i in $(fleet_known); do
    for comp in "${FLEET_COMPONENTS[@]}"; do
      c="$(fleet_name "$i")-$comp"
      [ -z "$(component_pid "$c")" ] || die "$c (pid $(component_pid "$c")) still running after SIGKILL"
      rm -f "$(pidfile "$c")"
    done
  done
  FLEET_STOPPED=$n
}

cmd_fleet_down() {
  local purge=${FLEET_PURGE:-0} count
  [[ "$purge" =~ ^[01]$ ]] || die "FLEET_PURGE must be 1 (delete the fleet's etcd keys) or 0/unset (keep them), got '$purge'"
  fleet_stop_all
  if [ "$FLEET_STOPPED" = 0 ]; then log "fleet: no fleet process was running"; else log "fleet: stopped $FLEET_STOPPED process(es)"; fi
  if [ "$purge" = 1 ]; then
    etcd_healthy ||
      die "FLEET_PURGE=1: the fleet is stopped, but the main cluster's etcd does not answer, so its keys stay; run make cluster-up, then make fleet-down FLEET_PURGE=1"
    count=$(etcd_delete_prefix "$FLEET_ETCD_PREFIX") || die "deleting the etcd keys under $FLEET_ETCD_PREFIX* failed"
    log "fleet: deleted $count etcd key(s) under $FLEET_ETCD_PREFIX* (certificates in $FLEET_DIR kept)"
  elif etcd_healthy && count=$(etcd_count_prefix "$FLEET_ETCD_PREFIX" 2>/dev/null); then
    log "fleet: kept its $count etcd key(s) under $FLEET_ETCD_PREFIX* (make fleet-down FLEET_PURGE=1 deletes them)"
  fi
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }
mib() { awk -v k="${1:-0}" 'BEGIN {printf "%.1f", k / 1024}'; }

# One line per fleet cluster: name, ports, pids, health, RSS (VmRSS of its processes).
# Exit status 1 when a cluster is unhealthy (a dead component, a stale pid file, not ready) or
# none runs; a stopped cluster (no pid files, e.g. beyond a smaller FLEET) is only listed.
cmd_fleet_status() {
  local known i c pid rc=0 running=0 tot_api=0 tot_cm=0 f stale
  known=$(fleet_known)
  if [ -z "$known" ]; then
    echo "no fleet cluster in $FLEET_DIR (start one: make fleet-up FLEET=N)"
    return 1
  fi
  printf '%-16s %-6s %-8s %-8s %-8s %-11s %s\n' CLUSTER PORT CM-PORT API-PID CM-PID STATE "RSS MiB (apiserver + controller-manager)"
  for i in $known; do
    local pids=() rss=() problems=()
    for c in "${FLEET_COMPONENTS[@]}"; do
      pid=$(fleet_pid "$i" "$c")
      f=$(fleet_pidfile "$i" "$c")
      if [ -n "$pid" ]; then
        pids+=("$pid")
        rss+=("$(rss_kib "$pid")")
      else
        pids+=(-)
        rss+=(0)
        if [ -e "$f" ]; then
          read -r stale _ < "$f" || true
          problems+=("$c: stale pid file (pid ${stale:-?} not running; make fleet-up restarts it)")
        else
          problems+=("$c: stopped")
        fi
      fi
    done
    [ "${pids[0]}" = - ] || fleet_apiserver_ready "$i" || problems+=("kube-apiserver: not ready (see $(fleet_log "$i" kube-apiserver))")
    [ "${pids[1]}" = - ] || fleet_cm_healthy "$i" || problems+=("kube-controller-manager: /healthz failing (see $(fleet_log "$i" kube-controller-manager))")
    local verdict=healthy
    if [ "${pids[0]}${pids[1]}" = -- ] && [ ! -e "$(fleet_pidfile "$i" kube-apiserver)" ] &&
      [ ! -e "$(fleet_pidfile "$i" kube-controller-manager)" ]; then
      verdict=stopped
    elif [ ${#problems[@]} -gt 0 ]; then
      verdict=UNHEALTHY
      rc=1
    fi
    local line
    if [ "${pids[0]}${pids[1]}" = -- ]; then
      line=-
    else
      running=$((running + 1))
      tot_api=$((tot_api + ${rss[0]:-0}))
      tot_cm=$((tot_cm + ${rss[1]:-0}))
      line="$(mib $((${rss[0]:-0} + ${rss[1]:-0}))) ($(mib "${rss[0]:-0}") + $(mib "${rss[1]:-0}"))"
    fi
    printf '%-16s %-6s %-8s %-8s %-8s %-11s %s\n' "$(fleet_name "$i")" "$(fleet_apiserver_port "$i")" "$(fleet_cm_port "$i")" \
      "${pids[0]}" "${pids[1]}" "$verdict" "$line"
    for c in "${problems[@]}"; do [ "$verdict" = stopped ] || echo "    $c"; done
  done
  echo
  if [ "$running" -gt 0 ]; then
    echo "running: $running cluster(s); RSS total $(mib $((tot_api + tot_cm))) MiB (kube-apiserver $(mib "$tot_api"), kube-controller-manager $(mib "$tot_cm")), per cluster $(mib $(((tot_api + tot_cm) / running))) MiB"
  else
    echo "running: none (make fleet-up FLEET=N)"
    rc=1
  fi
  echo "kubeconfig: $FLEET_KUBECONFIG; etcd: the main cluster's ($ETCD_URL), prefixes $FLEET_ETCD_PREFIX<i>; logs: $FLEET_LOGS"
  return $rc
}
