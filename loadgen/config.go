package loadgen

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/jobcast/jobcast/netsim"
)

// Config describes a load run. Zero values take the defaults named on each
// field.
type Config struct {
	// URL is the server's HTTP base URL, e.g. http://127.0.0.1:8080; it
	// must be a loopback address.
	URL string `json:"url"`
	// ClientURLs, if set, are the nodes the clients connect to instead of
	// URL, which keeps the producers and the server readings: each client
	// process gets one in turn (at least one process per URL), so a run
	// can publish through one cluster node and deliver through others.
	ClientURLs []string `json:"clientUrls,omitempty"`
	// APIKey is a producer API key of the server (required).
	APIKey string `json:"-"`
	// AdminToken reads /metrics and /v1/debug/runtime: server frames, heap
	// and goroutines, and CPU and memory when the server is not local.
	AdminToken string `json:"-"`

	// Conns is how many client connections to hold (default 100).
	Conns int `json:"conns"`
	// WatchersPerJob is how many of them watch each job (default 1).
	WatchersPerJob int `json:"watchersPerJob"`
	// ConnectRate is how many new connections per second are opened, in
	// total over every process (default 500).
	ConnectRate float64 `json:"connectRate"`
	// SourceIPs spreads connections over 127.0.0.1 .. 127.0.0.N (default
	// 16): each address has about 28,000 ephemeral ports, and servers limit
	// connections per address.
	SourceIPs int `json:"sourceIPs"`
	// Duration is the measured phase after every client connected (default
	// 10s). Then every job is completed and the run ends once every client
	// saw the end, or after DrainTimeout.
	Duration time.Duration `json:"duration"`
	// Rate is progress events per second per job (0: no progress, the
	// connections stay idle with heartbeats only).
	Rate float64 `json:"rate"`
	// BatchInterval is how often a producer posts each job's due events as
	// one batch (default 100ms).
	BatchInterval time.Duration `json:"batchInterval"`
	// Producers is how many producer goroutines share the jobs (default 8).
	Producers int `json:"producers"`
	// Churn makes each client close right after its ready frame and a new
	// one connect in its place, at ConnectRate, during Duration: the cost
	// of connection setup.
	Churn bool `json:"churn"`
	// Network, if not zero, puts a netsim proxy between the clients and the
	// server.
	Network netsim.Profile `json:"network"`
	// ServerPID is the server process, for CPU and memory from /proc
	// (0: find the process listening on URL's port; -1: do not use /proc,
	// read /metrics).
	ServerPID int `json:"serverPid"`
	// ConnsPerProcess caps the connections one process holds (default
	// 15,000, or 6,000 through a proxy, which holds two more sockets per
	// connection): one process may have 20,000 open files here.
	ConnsPerProcess int `json:"connsPerProcess"`
	// WorkerCommand runs a worker process; it must behave like `jobcast
	// loadgen -worker` (default: this executable with those arguments).
	WorkerCommand []string `json:"-"`
	// DrainTimeout bounds the wait for clients to see their jobs end
	// (default 60s).
	DrainTimeout time.Duration `json:"drainTimeout"`
	// Seed makes the client mix repeatable (0: random).
	Seed uint64 `json:"seed"`

	// Out receives progress lines (default: discarded).
	Out io.Writer `json:"-"`
	// Log receives unexpected errors (default: discarded).
	Log *slog.Logger `json:"-"`
}

func (c Config) withDefaults() Config {
	if c.Conns == 0 {
		c.Conns = 100
	}
	if c.WatchersPerJob == 0 {
		c.WatchersPerJob = 1
	}
	if c.ConnectRate == 0 {
		c.ConnectRate = 500
	}
	if c.SourceIPs == 0 {
		c.SourceIPs = 16
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.BatchInterval == 0 {
		c.BatchInterval = 100 * time.Millisecond
	}
	if c.Producers == 0 {
		c.Producers = 8
	}
	if c.ConnsPerProcess == 0 {
		c.ConnsPerProcess = 15000
		if !c.Network.IsZero() {
			c.ConnsPerProcess = 6000
		}
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 60 * time.Second
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

func (c Config) validate() error {
	if c.APIKey == "" {
		return errors.New("loadgen: a producer API key is required")
	}
	for _, u := range append([]string{c.URL}, c.ClientURLs...) {
		if err := CheckLoopback(u); err != nil {
			return err
		}
	}
	switch {
	case c.Conns < 1 || c.WatchersPerJob < 1:
		return errors.New("loadgen: conns and watchers per job must be at least 1")
	case c.ConnectRate <= 0 || c.Rate < 0:
		return errors.New("loadgen: rates must be positive")
	case c.SourceIPs < 1 || c.SourceIPs > 254:
		return errors.New("loadgen: source IPs must be within 1..254")
	case c.Duration < 0 || c.BatchInterval <= 0 || c.DrainTimeout <= 0:
		return errors.New("loadgen: durations must be positive")
	case c.Producers < 1 || c.ConnsPerProcess < 1:
		return errors.New("loadgen: producers and conns per process must be at least 1")
	}
	return c.Network.Validate()
}

// CheckLoopback refuses a target that is not on this machine: the load
// generator is for benchmarking one's own server.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("loadgen: target %q: want http://127.0.0.1:PORT", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("loadgen: target %s is not a loopback address; the load generator only drives a server on this machine", host)
	}
	return nil
}
