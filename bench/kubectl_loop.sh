#!/usr/bin/env bash
# The kubectl loop an SRE writes: one `kubectl get` of the namespace's Deployments, then one
# `kubectl patch` process (strategic merge, no precondition) per Deployment whose containers lack
# a /dev/shm mount: an emptyDir {medium: Memory, sizeLimit} volume "dshm" and the mount in every
# container. Prints {"patched": k}.
#   KUBECTL=... KUBECONFIG=... KUBE_CONTEXT=... bench/kubectl_loop.sh NAMESPACE SIZE
set -euo pipefail
ns=$1 size=$2
k=("${KUBECTL:-kubectl}" --context "${KUBE_CONTEXT:?}" -n "$ns")
# one line per Deployment: <name> <container>=<mountPath>,<mountPath>,;<container>=...;
jp='{range .items[*]}{.metadata.name}{" "}{range .spec.template.spec.containers[*]}{.name}{"="}{range .volumeMounts[*]}{.mountPath}{","}{end}{";"}{end}{"\n"}{end}'
list=$("${k[@]}" get deployments -o jsonpath="$jp")
patched=0
while read -r name containers; do
  need=0 mounts_patch=""
  IFS=';' read -ra cs <<<"$containers"
  for c in "${cs[@]}"; do
    [[ ",${c#*=}" == *",/dev/shm,"* ]] || need=1
    mounts_patch+="${mounts_patch:+,}{\"name\":\"${c%%=*}\",\"volumeMounts\":[{\"name\":\"dshm\",\"mountPath\":\"/dev/shm\"}]}"
  done
  [ "$need" = 1 ] || continue
  "${k[@]}" patch deployment "$name" --type strategic >/dev/null </dev/null \
    -p "{\"spec\":{\"template\":{\"spec\":{\"volumes\":[{\"name\":\"dshm\",\"emptyDir\":{\"medium\":\"Memory\",\"sizeLimit\":\"$size\"}}],\"containers\":[$mounts_patch]}}}}"
  patched=$((patched + 1))
done <<<"$list"
echo "{\"patched\": $patched}"
