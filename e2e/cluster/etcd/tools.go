//go:build tools

// Package tools only records the command that ../build-bins.sh builds. It is never compiled.
package tools

import _ "go.etcd.io/etcd/server/v3"
