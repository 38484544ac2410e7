# shellcheck shell=bash
# Certificates and kubeconfigs of the fleet clusters (sourced by cluster.sh; needs common.sh,
# pki.sh and fleet.sh). Each fleet cluster has its own CA, serving certificate, client
# certificates and service-account key pair under $FLEET_DIR/<name>/pki, created once.

# fleet_ensure_pki <i>
fleet_ensure_pki() {
  local i=$1 name dir
  name=$(fleet_name "$i")
  dir=$(fleet_cluster_dir "$i")
  local PKI_DIR=$dir/pki   # gen_ca, gen_cert and gen_sa_keypair write here
  mkdir -p "$PKI_DIR" "$dir/kubeconfigs"
  chmod 700 "$PKI_DIR"
  [ -s "$PKI_DIR/ca.crt" ] || log "$name: creating its CA, certificates and service-account key pair in $PKI_DIR"
  gen_ca "$name-ca"
  gen_cert apiserver "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  gen_cert admin "/O=system:masters/CN=shmfix-admin" clientAuth
  gen_cert controller-manager "/CN=system:kube-controller-manager" clientAuth
  gen_sa_keypair
  chmod 600 "$PKI_DIR"/*.key
  fleet_write_kubeconfig "$dir/kubeconfigs/controller-manager" controller-manager "$i"
}

# fleet_write_kubeconfig <file> <cert name> <i>...: one cluster, user and context per fleet
# cluster i (context = cluster = shmfix-fleet-<i>, its own server and CA, its own <cert name>
# client certificate); the current context is the first one.
fleet_write_kubeconfig() {
  local file=$1 cert=$2; shift 2
  local i name pki tmp="$file.tmp"
  {
    echo "apiVersion: v1"
    echo "kind: Config"
    echo "clusters:"
    for i in "$@"; do
      name=$(fleet_name "$i")
      echo "- name: $name"
      echo "  cluster:"
      echo "    server: https://127.0.0.1:$(fleet_apiserver_port "$i")"
      echo "    certificate-authority-data: $(b64 "$(fleet_cluster_dir "$i")/pki/ca.crt")"
    done
    echo "users:"
    for i in "$@"; do
      name=$(fleet_name "$i")
      pki=$(fleet_cluster_dir "$i")/pki
      echo "- name: $name-$cert"
      echo "  user:"
      echo "    client-certificate-data: $(b64 "$pki/$cert.crt")"
      echo "    client-key-data: $(b64 "$pki/$cert.key")"
    done
    echo "contexts:"
    for i in "$@"; do
      name=$(fleet_name "$i")
      echo "- name: $name"
      echo "  context:"
      echo "    cluster: $name"
      echo "    user: $name-$cert"
      echo "    namespace: default"
    done
    echo "current-context: $(fleet_name "$1")"
  } > "$tmp"
  chmod 600 "$tmp"
  mv "$tmp" "$file"
}
