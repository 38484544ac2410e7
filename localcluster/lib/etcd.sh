# shellcheck shell=bash
# Client calls to the main cluster's etcd through its gRPC gateway (JSON over HTTPS, the API
# server's etcd client certificate); no etcdctl needed. Sourced by cluster.sh; needs common.sh.

ETCD_URL=https://127.0.0.1:$ETCD_CLIENT_PORT

etcd_curl() {
  curl -sS --max-time 10 --cacert "$STATE/pki/ca.crt" \
    --cert "$STATE/pki/apiserver-etcd-client.crt" --key "$STATE/pki/apiserver-etcd-client.key" "$@"
}

etcd_healthy() { etcd_curl -f "$ETCD_URL/health" >/dev/null 2>&1; }

# etcd_range_json <prefix> [extra JSON members]: the request body selecting every key that starts
# with <prefix> (key = prefix, range_end = prefix with its last byte incremented; base64).
etcd_range_json() {
  python3 - "$1" "${2:-}" <<'EOF'
import base64, sys
prefix = sys.argv[1].encode()
end = prefix[:-1] + bytes([prefix[-1] + 1])
extra = ("," + sys.argv[2]) if sys.argv[2] else ""
b = lambda v: base64.b64encode(v).decode()
print('{"key":"%s","range_end":"%s"%s}' % (b(prefix), b(end), extra))
EOF
}

# etcd_json_field <field>: read an etcd gateway answer on stdin, print its (int64-as-string) field, 0 if absent.
etcd_json_field() { python3 -c 'import json,sys; print(int(json.load(sys.stdin).get(sys.argv[1], 0)))' "$1"; }

# etcd_count_prefix <prefix>: number of keys under <prefix>.
etcd_count_prefix() {
  etcd_curl -f -X POST "$ETCD_URL/v3/kv/range" -d "$(etcd_range_json "$1" '"count_only":true')" | etcd_json_field count
}

# etcd_delete_prefix <prefix>: delete every key under <prefix>; prints how many were deleted.
etcd_delete_prefix() {
  etcd_curl -f -X POST "$ETCD_URL/v3/kv/deleterange" -d "$(etcd_range_json "$1")" | etcd_json_field deleted
}
