// Command sealflow-relay is the agent distribute's relay mode starts on
// each host (see internal/relay): it takes a file from the control machine
// or another host, verifies it and passes it on.
package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/sealflow/sealflow/internal/relay"
)

func main() {
	// The control machine's connection is the agent's life: a hangup
	// or TERM (the task cancelled) ends it like the end of its input.
	signal.Ignore(syscall.SIGPIPE)
	os.Exit(relay.Run(os.Stdin, os.Stdout, relay.Options{}))
}
