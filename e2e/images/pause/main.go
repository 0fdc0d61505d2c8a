// Command pause is the test node's pod sandbox process (containerd's sandbox_image): it
// holds a pod's namespaces open, reaps the zombies of a shared PID namespace, and exits
// on SIGTERM or SIGINT. A test fixture, built FROM scratch by e2e/images/build.sh.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
