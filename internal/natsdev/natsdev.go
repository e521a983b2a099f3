// Package natsdev runs a NATS server with JetStream embedded, for trying
// cluster mode on one machine without installing nats-server: the
// jobcast-nats-dev command (`make cluster-demo`) and the tests that run
// that demo. One server, no authentication, loopback by default, JetStream
// files in a directory it is given or a temporary one it removes on exit.
// Production clusters run nats-server itself (docs/cluster.md).
package natsdev

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Run serves until ctx ends. Flags: -addr (default 127.0.0.1:4222; port 0
// picks a free one) and -store-dir. It prints "nats-dev: listening on
// nats://HOST:PORT" once the server accepts clients: scripts wait for that
// line.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("jobcast-nats-dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:4222", "listen address (port 0: any free port)")
	storeDir := fs.String("store-dir", "", "JetStream directory (default: a temporary one, removed on exit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, portText, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", *addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("-addr %q: bad port", *addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	dir := *storeDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "jobcast-nats-dev-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "jobcast-nats-dev", Host: host, Port: port,
		JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true,
	})
	if err != nil {
		return fmt.Errorf("nats server: %w", err)
	}
	s.Start()
	defer func() {
		s.Shutdown()
		s.WaitForShutdown()
	}()
	if !s.ReadyForConnections(10 * time.Second) {
		return errors.New("nats server not ready after 10s")
	}
	fmt.Fprintf(stdout, "nats-dev: listening on %s (JetStream in %s)\n", s.ClientURL(), dir)
	<-ctx.Done()
	fmt.Fprintln(stdout, "nats-dev: stopping")
	return nil
}
