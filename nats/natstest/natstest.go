// Package natstest starts an embedded nats-server with JetStream for tests:
// a real server in-process, on a random loopback port, storing in a test
// temp dir, so NATS tests need nothing installed.
package natstest

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
)

// Server is an embedded server that a test can stop and start again on the
// same port and store, as an operator restarts NATS.
type Server struct {
	URL  string
	t    testing.TB
	opts server.Options
	s    *server.Server
}

// NewServer starts a server and returns its client URL; it shuts down when
// the test ends.
func NewServer(t testing.TB) string {
	t.Helper()
	return Start(t).URL
}

// Start starts a server, with opts applied to its options; it shuts down
// when the test ends.
func Start(t testing.TB, opts ...func(*server.Options)) *Server {
	t.Helper()
	srv := &Server{t: t, opts: server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}}
	for _, o := range opts {
		o(&srv.opts)
	}
	srv.Restart()
	srv.opts.Port = srv.s.Addr().(*net.TCPAddr).Port
	srv.URL = srv.s.ClientURL()
	t.Cleanup(srv.Stop)
	return srv
}

// Restart starts the server again after Stop, on the same port and store.
func (srv *Server) Restart() {
	srv.t.Helper()
	opts := srv.opts
	s, err := server.NewServer(&opts)
	if err != nil {
		srv.t.Fatalf("nats server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		srv.t.Fatal("nats server not ready after 10s")
	}
	srv.s = s
}

// Stop shuts the server down and waits for it; it is idempotent.
func (srv *Server) Stop() {
	if srv.s == nil {
		return
	}
	srv.s.Shutdown()
	srv.s.WaitForShutdown()
	srv.s = nil
}

// Connect opens a client connection to url, closed when the test ends. It
// reconnects quickly and for ever, so tests that restart the server need
// not wait.
func Connect(t testing.TB, url string) *natsgo.Conn {
	t.Helper()
	nc, err := natsgo.Connect(url, natsgo.Name(t.Name()), natsgo.ReconnectWait(20*time.Millisecond), natsgo.MaxReconnects(-1))
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}
