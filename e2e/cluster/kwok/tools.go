//go:build tools

// Package tools only records the command that ../build-bins.sh builds. It is never compiled.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
