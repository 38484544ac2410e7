#!/usr/bin/env bash
# The df loop an SRE writes: list the running pods, then one `kubectl exec <pod> -- df -Pk /dev/shm`
# after the other. Prints "<pod> <df line>" per pod.
#   KUBECTL=... KUBECONFIG=... KUBE_CONTEXT=... bench/kubectl_df_loop.sh NAMESPACE SELECTOR
set -euo pipefail
ns=$1 selector=$2
k=("${KUBECTL:-kubectl}" --context "${KUBE_CONTEXT:?}" -n "$ns")
pods=$("${k[@]}" get pods -l "$selector" --field-selector status.phase=Running -o jsonpath='{.items[*].metadata.name}')
for pod in $pods; do
  echo "$pod $("${k[@]}" exec "$pod" -- df -Pk /dev/shm </dev/null | tail -n 1)"
done
