//go:build tools

// Package tools pins the commands this wrapper builds.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kubelet"
)
