# shellcheck shell=bash
# Certificates and kubeconfigs of the embedded cluster (sourced by cluster.sh; needs common.sh).
# Everything is created once under $STATE/pki and $STATE/kubeconfigs and reused afterwards.

PKI_DAYS=3650

# gen_cert <name> <subject> <extendedKeyUsage> [subjectAltName]: signed by $PKI_DIR/ca.{crt,key}
# into $PKI_DIR (the fleet rebinds PKI_DIR with `local` to each fleet cluster's own CA).
PKI_DIR=$STATE/pki
gen_cert() {
  local name=$1 subj=$2 eku=$3 san=${4:-} dir=$PKI_DIR
  [ -s "$dir/$name.crt" ] && [ -s "$dir/$name.key" ] && return 0
  openssl genrsa -out "$dir/$name.key" 2048 2>/dev/null
  openssl req -new -key "$dir/$name.key" -subj "$subj" -out "$dir/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } > "$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days "$PKI_DAYS" -sha256 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
}

# gen_ca <common name>: a self-signed CA in $PKI_DIR/ca.{crt,key}, once.
gen_ca() {
  local dir=$PKI_DIR
  [ -s "$dir/ca.crt" ] && return 0
  openssl genrsa -out "$dir/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$dir/ca.key" -subj "/CN=$1" -days "$PKI_DAYS" -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$dir/ca.crt" 2>/dev/null
}

# gen_sa_keypair: the service-account token signing key pair $PKI_DIR/sa.{key,pub}, once.
gen_sa_keypair() {
  local dir=$PKI_DIR
  [ -s "$dir/sa.key" ] && return 0
  openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
  openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
}

b64() { base64 -w0 < "$1"; }

# write_kubeconfig <file> <user> <cert name> <context>...
# Every context points at the same cluster (one cluster entry per context, so tools that treat
# contexts as distinct clusters, like the fleet tests, see distinct names).
write_kubeconfig() {
  local file=$1 user=$2 cert=$3; shift 3
  local ctx tmp="$file.tmp"
  {
    echo "apiVersion: v1"
    echo "kind: Config"
    echo "clusters:"
    for ctx in "$@"; do
      echo "- name: $ctx"
      echo "  cluster:"
      echo "    server: $APISERVER_URL"
      echo "    certificate-authority-data: $(b64 "$STATE/pki/ca.crt")"
    done
    echo "users:"
    echo "- name: $user"
    echo "  user:"
    echo "    client-certificate-data: $(b64 "$STATE/pki/$cert.crt")"
    echo "    client-key-data: $(b64 "$STATE/pki/$cert.key")"
    echo "contexts:"
    for ctx in "$@"; do
      echo "- name: $ctx"
      echo "  context:"
      echo "    cluster: $ctx"
      echo "    user: $user"
      echo "    namespace: default"
    done
    echo "current-context: $1"
  } > "$tmp"
  chmod 600 "$tmp"
  mv "$tmp" "$file"
}

ensure_pki() {
  local dir=$STATE/pki node
  mkdir -p "$dir" "$STATE/kubeconfigs"
  chmod 700 "$dir"
  [ -s "$dir/ca.crt" ] || log "creating the cluster CA and certificates in $dir"
  gen_ca shmfix-local-ca
  gen_cert etcd-server "/CN=shmfix-etcd" serverAuth,clientAuth "IP:127.0.0.1,DNS:localhost"
  gen_cert apiserver-etcd-client "/CN=kube-apiserver-etcd-client" clientAuth
  gen_cert apiserver "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  # The API server's client certificate towards the kubelets (exec, logs, port-forward).
  gen_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  gen_cert admin "/O=system:masters/CN=shmfix-admin" clientAuth
  gen_cert controller-manager "/CN=system:kube-controller-manager" clientAuth
  gen_cert scheduler "/CN=system:kube-scheduler" clientAuth
  for node in "${NODES[@]}"; do
    gen_cert "kubelet-$node" "/O=system:nodes/CN=system:node:$node" clientAuth
    # Serving certificate of the kubelet (the API server does not verify it, but a CA-signed one
    # keeps the kubelet from writing a self-signed pair).
    # It names the node's bridge address too: the kubelet serves there (see node.sh).
    if [ -s "$dir/kubelet-$node-serving.crt" ] &&
      ! openssl x509 -in "$dir/kubelet-$node-serving.crt" -noout -ext subjectAltName 2>/dev/null | grep -q "IP Address:${NODE_NET[$node]}.1"; then
      rm -f "$dir/kubelet-$node-serving.crt" "$dir/kubelet-$node-serving.key"
    fi
    gen_cert "kubelet-$node-serving" "/CN=$node" serverAuth "DNS:$node,IP:127.0.0.1,IP:${NODE_NET[$node]}.1"
  done
  gen_sa_keypair
  chmod 600 "$dir"/*.key
  write_kubeconfig "$STATE/kubeconfig" shmfix-admin admin shmfix-local shmfix-local-alt
  write_kubeconfig "$STATE/kubeconfigs/controller-manager" system:kube-controller-manager controller-manager shmfix-local
  write_kubeconfig "$STATE/kubeconfigs/scheduler" system:kube-scheduler scheduler shmfix-local
  for node in "${NODES[@]}"; do
    write_kubeconfig "$STATE/kubeconfigs/kubelet-$node" "system:node:$node" "kubelet-$node" shmfix-local
  done
}
