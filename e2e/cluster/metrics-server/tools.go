//go:build tools

// Package tools only records the command that ../build-bins.sh builds: metrics-server,
// which serves metrics.k8s.io from the kubelets' resource metrics, so that the
// HorizontalPodAutoscalers the operator creates have CPU utilisation to act on.
package tools

import _ "sigs.k8s.io/metrics-server/cmd/metrics-server"
