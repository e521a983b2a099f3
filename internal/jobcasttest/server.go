// Package jobcasttest starts a complete jobcast server (producer API, hub,
// job service) on 127.0.0.1:0 for tests and benchmarks, with an in-memory
// or SQLite store and the real or a manual clock.
package jobcasttest

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/httpapi"
	"github.com/jobcast/jobcast/hub"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/sqlite"
)

// APIKey is the producer key every test server accepts.
const APIKey = "test-api-key-0123456789"

// AdminToken is the admin token every test server accepts.
const AdminToken = "test-admin-token-0123456789"

// Options tune a test server. Zero values give an in-memory store, the
// system clock and default config.
type Options struct {
	Config jobcast.Config // defaults applied on top
	Clock  jobcast.Clock
	// SQLiteDir, when set, stores jobs in a SQLite file there.
	SQLiteDir string
	// Store overrides the store (SQLiteDir is then ignored).
	Store jobcast.JobStore
	// Broker overrides the in-memory broker: two servers given the same
	// Store and Broker act as two nodes of one cluster.
	Broker jobcast.Broker
	Log    *slog.Logger
	// Recorder takes the server's telemetry events (default: none).
	Recorder jobcast.EventRecorder
}

// Server is a running test server.
type Server struct {
	URL      string // http://127.0.0.1:port
	WSURL    string // ws://127.0.0.1:port/ws/progress
	HTTP     *httptest.Server
	Hub      *hub.Hub
	API      *httpapi.API
	Jobs     *jobs.Service
	Store    jobcast.JobStore
	Broker   jobcast.Broker
	Tokens   *auth.Tokens
	Producer *client.Producer
	Config   jobcast.Config
	Clock    jobcast.Clock

	closed bool
}

// Start starts a server and registers its shutdown with t.Cleanup.
func Start(tb testing.TB, opt Options) *Server {
	tb.Helper()
	s, err := start(opt)
	if err != nil {
		tb.Fatalf("start test server: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func start(opt Options) (*Server, error) {
	cfg := opt.Config
	if len(cfg.APIKeys) == 0 {
		cfg.APIKeys = []string{APIKey}
	}
	if cfg.AdminToken == "" {
		cfg.AdminToken = AdminToken
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "test"
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	clock := opt.Clock
	if clock == nil {
		clock = jobcast.SystemClock{}
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	store := opt.Store
	if store == nil {
		if opt.SQLiteDir != "" {
			st, err := sqlite.OpenJobStore(context.Background(), filepath.Join(opt.SQLiteDir, "jobcast.db"))
			if err != nil {
				return nil, err
			}
			store = st
		} else {
			store = inmem.NewJobStore()
		}
	}
	secret := cfg.JWTSecret
	if secret == "" {
		secret = "test-jwt-secret-0123456789-0123456789"
	}
	ring, err := auth.NewKeyring(auth.Key{ID: auth.SecretKeyID([]byte(secret)), Secret: []byte(secret)})
	if err != nil {
		return nil, err
	}
	tokens := auth.NewTokens(ring, cfg.TokenTTL, clock)
	apiKeys, err := auth.NewAPIKeys(cfg.APIKeys, nil)
	if err != nil {
		return nil, err
	}
	broker := opt.Broker
	if broker == nil {
		broker = inmem.NewBroker()
	}
	catalog := jobcast.NewCatalog(cfg.Errors)
	svc := jobs.New(store, broker, catalog, clock, log)
	h := hub.New(hub.Options{Config: cfg, Store: store, Broker: broker, Tokens: tokens, Catalog: catalog, Clock: clock, Log: log, NodeID: cfg.NodeID, Recorder: opt.Recorder})
	svc.SetTelemetry(opt.Recorder, h.ThrottledCount)
	api := httpapi.New(httpapi.Options{Config: cfg, Jobs: svc, Hub: h, Tokens: tokens, APIKeys: apiKeys, Clock: clock, Log: log})
	ts := httptest.NewServer(api)
	return &Server{
		URL:      ts.URL,
		WSURL:    "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws/progress",
		HTTP:     ts,
		Hub:      h,
		API:      api,
		Jobs:     svc,
		Store:    store,
		Broker:   broker,
		Tokens:   tokens,
		Producer: client.NewProducer(ts.URL, APIKey),
		Config:   cfg,
		Clock:    clock,
	}, nil
}

// Close shuts the server down: clients get 1001, then the listener and the
// store close. It is idempotent.
func (s *Server) Close() {
	if s.closed {
		return
	}
	s.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.API.Drain()
	_ = s.Hub.Shutdown(ctx)
	s.HTTP.CloseClientConnections()
	s.HTTP.Close()
	_ = s.Store.Close()
}
