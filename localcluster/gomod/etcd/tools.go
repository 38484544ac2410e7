//go:build tools

// Package tools pins the command this wrapper builds (etcd's main package).
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
