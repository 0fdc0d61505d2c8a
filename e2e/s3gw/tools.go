//go:build tools

// Package tools only records the command that build.sh builds, so that `go mod tidy`
// keeps its dependencies in go.sum. It is never compiled.
package tools

import _ "github.com/versity/versitygw/cmd/versitygw"
