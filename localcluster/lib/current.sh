# shellcheck shell=bash disable=SC2034  # (the scope's settings are read by the helpers it calls)
# The current cluster: a second, complete Kubernetes v1.37 cluster beside the legacy one
# (its own etcd, kube-apiserver, kube-controller-manager, kube-scheduler and one node
# shmfix-current = its own containerd + kubelet), with InPlacePodVerticalScalingMemoryBackedVolumes
# on. Sourced by cluster.sh (build-current | up-current | down-current | status-current); needs
# common.sh, pki.sh, node.sh and cluster.sh's start_etcd/start_apiserver/start_controllers.
#
# It reuses the main cluster's helpers by rebinding their settings (STATE, RUN_DIR, LOG_DIR, PKI_DIR,
# ports, NODES, K8S_BIN, ...) in the scope of each command (current_scope; bash's dynamic scoping
# makes every helper called from there see them). Its state lives beside the main cluster's, not
# under it ($REPO_ROOT/.localcluster-current), so the main cluster's `down` (which unmounts
# everything under .localcluster/) never touches the current cluster's pods, and the other way round.

CURRENT_STATE=${SHMFIX_CURRENT_STATE:-$REPO_ROOT/.localcluster-current}
K8S_CUR_VERSION=$(gomod_version "$LC_DIR/gomod/k8s-v1.37" k8s.io/kubernetes)
K8S_CUR_BIN=$CACHE/k8s-$K8S_CUR_VERSION/bin
CURRENT_NODE=shmfix-current
CURRENT_CONTEXT=shmfix-current
# Ports on 127.0.0.1 (none a Kubernetes/etcd default, none used by the main cluster or the fleet's
# 17101-17299). Keep localcluster/README.md in sync.
CURRENT_ETCD_CLIENT_PORT=18379
CURRENT_ETCD_PEER_PORT=18380
CURRENT_APISERVER_PORT=18443
CURRENT_CONTROLLER_MANAGER_PORT=18257
CURRENT_SCHEDULER_PORT=18259
NODE_MODE["shmfix-current"]=sized
NODE_KUBELET_PORT["shmfix-current"]=18250
NODE_HEALTHZ_PORT["shmfix-current"]=18248
NODE_BRIDGE["shmfix-current"]=shmfix-br3
NODE_NET["shmfix-current"]=10.244.3
# KEP-6030 (alpha in 1.37, off by default): the pod `resize` subresource may change the sizeLimit of a
# memory-backed emptyDir of a running pod. It depends on InPlacePodVerticalScaling and
# NodeDeclaredFeatures, both GA and locked on in 1.37. The API server (validation, resize strategy) and
# the kubelet (declares it in node.status.declaredFeatures, resizes the tmpfs) both need it.
CURRENT_FEATURE_GATES=InPlacePodVerticalScalingMemoryBackedVolumes=true
# Kubelets from 1.35 on refuse cgroup v1 unless failCgroupV1 is false; this VM is cgroup v1.
NODE_KUBELET_EXTRA["shmfix-current"]="failCgroupV1: false
featureGates:
  InPlacePodVerticalScalingMemoryBackedVolumes: true"
CURRENT_OWNER_FILE=/run/shmfix-localcluster-current.owner
# The node's kubelet. stock: v1.37.2 as released. On a cgroup v1 host (this VM) the stock kubelet accepts
# the feature, declares it, and then marks every memory-backed volume resize Infeasible ("Memory-backed
# emptyDir volume resize is not supported on cgroups v1", disallowResizeForMemoryBackedVolumes in
# pkg/kubelet/allocation/handlers.go). cgroupv1-resize: the same v1.37.2 kubelet built with that one
# refusal removed (go build -overlay, nothing else changed; the node is labelled
# shmfix.io/kubelet-patch=cgroupv1-resize), so that the in-place path can be exercised end to end here.
CURRENT_KUBELET=${SHMFIX_CURRENT_KUBELET:-stock}
case $CURRENT_KUBELET in
  stock) ;;
  cgroupv1-resize)
    NODE_KUBELET_BIN["shmfix-current"]=$K8S_CUR_BIN/kubelet-cgroupv1-resize
    ;;
  *) die "SHMFIX_CURRENT_KUBELET must be stock or cgroupv1-resize, got '$CURRENT_KUBELET'" ;;
esac

# current_scope: called first by each command, after `local` of every name it sets.
current_scope() {
  STATE=$CURRENT_STATE
  RUN_DIR=$CURRENT_STATE/run
  LOG_DIR=$CURRENT_STATE/logs
  PKI_DIR=$CURRENT_STATE/pki
  K8S_BIN=$K8S_CUR_BIN
  OWNER_FILE=$CURRENT_OWNER_FILE
  ETCD_CLIENT_PORT=$CURRENT_ETCD_CLIENT_PORT
  ETCD_PEER_PORT=$CURRENT_ETCD_PEER_PORT
  APISERVER_PORT=$CURRENT_APISERVER_PORT
  CONTROLLER_MANAGER_PORT=$CURRENT_CONTROLLER_MANAGER_PORT
  SCHEDULER_PORT=$CURRENT_SCHEDULER_PORT
  APISERVER_URL=https://127.0.0.1:$CURRENT_APISERVER_PORT
  KUBE_CONTEXT=$CURRENT_CONTEXT
  NODES=("$CURRENT_NODE")
  # MutatingAdmissionPolicy is GA and on by default from 1.36 (admissionregistration.k8s.io/v1).
  APISERVER_EXTRA_FLAGS=(--feature-gates "$CURRENT_FEATURE_GATES")
  CONTROLLERS_EXTRA_FLAGS=(--feature-gates "$CURRENT_FEATURE_GATES")
}
# The names current_scope sets; each command starts with: local $CURRENT_LOCALS; current_scope
CURRENT_LOCALS="STATE RUN_DIR LOG_DIR PKI_DIR K8S_BIN OWNER_FILE ETCD_CLIENT_PORT ETCD_PEER_PORT APISERVER_PORT CONTROLLER_MANAGER_PORT SCHEDULER_PORT APISERVER_URL KUBE_CONTEXT NODES APISERVER_EXTRA_FLAGS CONTROLLERS_EXTRA_FLAGS"

CURRENT_COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler "containerd-$CURRENT_NODE" "kubelet-$CURRENT_NODE")

cmd_current_build() {
  require_root
  ensure_packages
  command -v go >/dev/null || die "go is not installed; etcd and Kubernetes are built from the Go module proxy (Go >= 1.26)"
  build_etcd
  build_k8s "$LC_DIR/gomod/k8s-v1.37" "$K8S_CUR_BIN" kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl
  [ "$CURRENT_KUBELET" = stock ] || build_kubelet_cgroupv1_resize
  build_images
  mkdir -p "$CURRENT_STATE/bin"
  ln -sfn "$K8S_CUR_BIN/kubectl" "$CURRENT_STATE/bin/kubectl"
  log "current cluster binaries: etcd $ETCD_VERSION, kubernetes $K8S_CUR_VERSION, images in $IMAGE_DIR"
}

# kubelet-cgroupv1-resize: kubelet v1.37.2 whose disallowResizeForMemoryBackedVolumes no longer refuses
# cgroup v1. go build -overlay may not replace files of the module cache, so the build uses a copy of
# the k8s.io/kubernetes module (hard links into the module cache, but for the one patched file) and a
# copy of the wrapper module that replaces k8s.io/kubernetes with it.
build_kubelet_cgroupv1_resize() {
  local out=$K8S_CUR_BIN/kubelet-cgroupv1-resize src work=$K8S_CUR_BIN/src-cgroupv1-resize file=pkg/kubelet/allocation/handlers.go
  [ -x "$out" ] && return 0
  src=$(cd "$LC_DIR/gomod/k8s-v1.37" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' k8s.io/kubernetes) || src=
  [ -d "$src" ] || die "go list -m k8s.io/kubernetes in gomod/k8s-v1.37 named no directory"
  rm -rf "$work"
  mkdir -p "$work/wrapper"
  cp -al "$src" "$work/kubernetes"
  rm -f "$work/kubernetes/$file"
  sed 's/^\t\tif cgroupVersion == 1 {$/\t\tif cgroupVersion == 1 \&\& false { \/\/ shmfix localcluster: cgroupv1-resize/' "$src/$file" > "$work/kubernetes/$file"
  grep -q 'shmfix localcluster: cgroupv1-resize' "$work/kubernetes/$file" || die "the cgroup v1 check was not found in $src/$file"
  cp "$LC_DIR/gomod/k8s-v1.37/go.mod" "$LC_DIR/gomod/k8s-v1.37/go.sum" "$LC_DIR/gomod/k8s-v1.37/tools.go" "$work/wrapper/"
  (cd "$work/wrapper" && go mod edit -replace "k8s.io/kubernetes=$work/kubernetes") || die "go mod edit in $work/wrapper failed"
  log "building kubelet-cgroupv1-resize $K8S_CUR_VERSION (log: $work/build.log)"
  local start=$SECONDS
  timed "$out.rusage" "$LC_DIR/scripts/build-k8s.sh" "$work/wrapper" "$work" kubelet || die "building kubelet-cgroupv1-resize failed; see $work/build.log"
  mv "$work/kubelet" "$out"
  log "built kubelet-cgroupv1-resize in $((SECONDS - start))s"
}

# Its own CA, certificates and kubeconfigs under $CURRENT_STATE (in the scope of current_scope).
current_ensure_pki() {
  local dir=$STATE/pki node=$CURRENT_NODE
  mkdir -p "$dir" "$STATE/kubeconfigs"
  chmod 700 "$dir"
  [ -s "$dir/ca.crt" ] || log "current: creating its CA and certificates in $dir"
  gen_ca shmfix-current-ca
  gen_cert etcd-server "/CN=shmfix-current-etcd" serverAuth,clientAuth "IP:127.0.0.1,DNS:localhost"
  gen_cert apiserver-etcd-client "/CN=kube-apiserver-etcd-client" clientAuth
  gen_cert apiserver "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  gen_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  gen_cert admin "/O=system:masters/CN=shmfix-admin" clientAuth
  gen_cert controller-manager "/CN=system:kube-controller-manager" clientAuth
  gen_cert scheduler "/CN=system:kube-scheduler" clientAuth
  gen_cert "kubelet-$node" "/O=system:nodes/CN=system:node:$node" clientAuth
  gen_cert "kubelet-$node-serving" "/CN=$node" serverAuth "DNS:$node,IP:127.0.0.1,IP:${NODE_NET[$node]}.1"
  gen_sa_keypair
  chmod 600 "$dir"/*.key
  write_kubeconfig "$STATE/kubeconfig" shmfix-admin admin "$CURRENT_CONTEXT"
  write_kubeconfig "$STATE/kubeconfigs/controller-manager" system:kube-controller-manager controller-manager "$CURRENT_CONTEXT"
  write_kubeconfig "$STATE/kubeconfigs/scheduler" system:kube-scheduler scheduler "$CURRENT_CONTEXT"
  write_kubeconfig "$STATE/kubeconfigs/kubelet-$node" "system:node:$node" "kubelet-$node" "$CURRENT_CONTEXT"
}

cmd_current_up() {
  # shellcheck disable=SC2086  # a list of names
  local $CURRENT_LOCALS
  current_scope
  require_root
  local start=$SECONDS leftovers since node=$CURRENT_NODE
  if [ -d "$STATE/run" ] && cluster_healthy; then
    log "current cluster already up and healthy; reusing it (kubeconfig: $STATE/kubeconfig, context $CURRENT_CONTEXT)"
    local running
    read -r _ running < "$(pidfile "kubelet-$node")" || true
    [ "$running" = "$(node_kubelet_bin "$node")" ] ||
      log "note: its kubelet is $running, not the one SHMFIX_CURRENT_KUBELET=$CURRENT_KUBELET names; down-current first to switch"
    return 0
  fi
  leftovers=$(cluster_leftovers)
  if [ -n "$leftovers" ]; then
    log "current: found a half-running cluster ($leftovers); cleaning it up before starting again"
    current_down_scoped
  fi
  cmd_current_build
  IMAGE_DIR=$(image_dir)
  claim_host_resources
  ensure_hosts
  current_ensure_pki
  mkdir -p "$STATE/logs" "$STATE/run"
  since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  start_etcd
  start_apiserver
  start_controllers
  node_cgroup_create "$node"
  node_bridge_create "$node"
  node_write_configs "$node"
  node_start_containerd "$node"
  node_import_images "$node"
  node_start_kubelet "$node"
  wait_nodes_ready "$since"
  # Which kubelet runs (--node-labels only applies when a node registers, so the label is set here).
  if [ "$CURRENT_KUBELET" = stock ]; then
    kubectl_admin label node "$node" shmfix.io/kubelet-patch- >/dev/null
  else
    kubectl_admin label node "$node" --overwrite "shmfix.io/kubelet-patch=$CURRENT_KUBELET" >/dev/null
  fi
  wait_for 60 "default ServiceAccount" kubectl_admin -n default get serviceaccount default ||
    die "the default ServiceAccount was not created within 60 s; see $STATE/logs/kube-controller-manager.log"
  log "current cluster ($K8S_CUR_VERSION) up in $((SECONDS - start))s; kubeconfig $STATE/kubeconfig (context $CURRENT_CONTEXT)"
  kubectl_admin get nodes -o wide >&2
}

# down, in the scope of current_scope: kubelet, pods, containerd, control plane, mounts, runtime state.
current_down_scoped() {
  local c host_owned=true owner node=$CURRENT_NODE
  owner=$(owner_state)
  if [ -n "$owner" ] && [ "$owner" != "$STATE" ]; then
    host_owned=false
    log "current: the node cgroup and bridge belong to the current cluster of $owner; leaving them alone"
  fi
  node_stop "$node" "$host_owned"
  for c in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_component "$c" 20; done
  unmount_state
  rm -rf "$(node_dir "$node")/containerd/state" "$(node_dir "$node")/containerd/runc" "$(node_dir "$node")/cni/ipam"
  if $host_owned; then
    node_cgroup_remove "$node"
    node_bridge_remove "$node"
    rm -f "$OWNER_FILE"
  fi
  for c in "${CURRENT_COMPONENTS[@]}"; do [ -z "$(component_pid "$c")" ] || die "current: $c still running after down"; done
  log "current cluster down (state kept in $STATE)"
}

cmd_current_down() {
  # shellcheck disable=SC2086  # a list of names
  local $CURRENT_LOCALS
  current_scope
  require_root
  current_down_scoped
}

cmd_current_status() {
  # shellcheck disable=SC2086  # a list of names
  local $CURRENT_LOCALS
  current_scope
  local c pid rc=0 rss total=0
  printf '%-32s %-22s %s\n' COMPONENT STATE "RSS MiB"
  for c in "${CURRENT_COMPONENTS[@]}"; do
    pid=$(component_pid "$c")
    if [ -n "$pid" ]; then
      rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      total=$((total + ${rss:-0}))
      printf '%-32s %-22s %s\n' "$c" "running (pid $pid)" "$(awk -v k="${rss:-0}" 'BEGIN {printf "%.1f", k / 1024}')"
    else
      printf '%-32s %s\n' "$c" stopped
      rc=1
    fi
  done
  echo "total RSS of the processes above: $(awk -v k="$total" 'BEGIN {printf "%.1f", k / 1024}') MiB (pods, containerd shims not included)"
  if [ -s "$STATE/kubeconfig" ] && curl_admin -f "$APISERVER_URL/readyz" >/dev/null 2>&1; then
    echo
    echo "server: $(curl_admin "$APISERVER_URL/version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["gitVersion"])')  $APISERVER_URL  kubeconfig: $STATE/kubeconfig (context $CURRENT_CONTEXT)"
    kubectl_admin get nodes \
      -o custom-columns='NODE:.metadata.name,READY:.status.conditions[?(@.type=="Ready")].status,KUBELET:.status.nodeInfo.kubeletVersion,RUNTIME:.status.nodeInfo.containerRuntimeVersion,PORT:.status.daemonEndpoints.kubeletEndpoint.Port,DECLARED:.status.declaredFeatures'
  else
    echo
    echo "API server not reachable at $APISERVER_URL"
    rc=1
  fi
  return $rc
}
