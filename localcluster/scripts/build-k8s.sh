#!/usr/bin/env bash
# Build Kubernetes commands from a committed wrapper module into a version-keyed cache.
#   build-k8s.sh <wrapper dir> <out dir> cmd...
# A command already present in <out dir> is not rebuilt. Output goes to <out dir>/build.log;
# on failure the last lines of the log are shown.
set -euo pipefail
wrapper=$1 out=$2; shift 2
version=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$wrapper/go.mod")
[ -n "$version" ] || { echo "build-k8s: no 'require k8s.io/kubernetes' in $wrapper/go.mod" >&2; exit 1; }
minor=${version#v1.}; minor=${minor%%.*}
mkdir -p "$out"
log="$out/build.log"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${version} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z -X k8s.io/client-go/pkg/version.gitVersion=${version} -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=${minor}"
for cmd in "$@"; do
  if [ -x "$out/$cmd" ]; then echo "build-k8s: $cmd ${version} cached in $out"; continue; fi
  echo "build-k8s: building $cmd ${version} (cold builds take minutes; log: $log)"
  start=$(date +%s)
  if ! (cd "$wrapper" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$out/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd") >>"$log" 2>&1; then
    echo "build-k8s: building $cmd ${version} FAILED; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  mv "$out/$cmd.tmp" "$out/$cmd"
  echo "build-k8s: built $cmd in $(( $(date +%s) - start ))s"
done
