// Command jobcast-nats-dev runs a NATS server with JetStream, embedded, for
// trying cluster mode on one machine (`make cluster-demo`) without
// installing nats-server. It is a development tool (package
// internal/natsdev); production clusters run nats-server itself
// (docs/cluster.md). It is a separate program so that the jobcast binary
// does not carry a NATS server.
//
//	jobcast-nats-dev [-addr 127.0.0.1:4222] [-store-dir DIR]
//
// It prints "nats-dev: listening on nats://HOST:PORT" once it accepts
// clients, and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/jobcast/jobcast/internal/natsdev"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := natsdev.Run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "jobcast-nats-dev:", err)
		os.Exit(1)
	}
}
