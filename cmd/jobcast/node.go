package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/alerting"
	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/dashboard"
	"github.com/jobcast/jobcast/experiment"
	"github.com/jobcast/jobcast/gql"
	"github.com/jobcast/jobcast/httpapi"
	"github.com/jobcast/jobcast/hub"
	"github.com/jobcast/jobcast/internal/httputil"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/metrics"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/promexport"
	"github.com/jobcast/jobcast/telemetry"
)

// node is one running jobcast server, on the embedded or the cluster
// engines (engines.go).
type node struct {
	cfg       jobcast.Config
	log       *slog.Logger
	store     jobcast.JobStore
	hub       *hub.Hub
	api       *httpapi.API
	retention *jobs.Retention
	events    jobcast.TelemetryStore
	recorder  *telemetry.Recorder
	evRetain  *telemetry.Retention
	// alerts evaluates the alert rules; alertStore persists its state.
	alerts     *alerting.Service
	alertStore jobcast.AlertStore
	// alertLease elects the one node that evaluates alerts (cluster mode;
	// nil embedded).
	alertLease *nats.Lease
	// users are the named dashboard and API users (users.go).
	users userStore
	// experiments assigns experiment values to connections; expStore
	// persists experiments and assignments.
	experiments *experiment.Service
	expStore    experimentStore
	expRetain   *experiment.Retention
	// stopExpWatch ends the reloads on other nodes' experiment changes
	// (cluster mode; nil embedded).
	stopExpWatch func()
	srv          *http.Server
	ln           net.Listener
	serveErr     chan error
	// APIKey is the key generated on first start ("" if none was generated).
	APIKey string

	// closeEngines closes what the job store and broker share (a NATS
	// connection), after both.
	closeEngines func()

	// reporter publishes this node's live figures to the node registry,
	// which the dashboard sums (nodes.go).
	reporter *nodeReporter
}

// startNode opens the stores, generates missing secrets, and starts serving.
// Notes for the operator (a generated key) are written to out. The engines
// are embedded ones, or the cluster ones cfg's NATSURL and ClickHouseURL
// name (engines.go).
func startNode(ctx context.Context, cfg jobcast.Config, log *slog.Logger, out io.Writer, opts ...nodeOption) (*node, error) {
	clock := jobcast.SystemClock{}
	urls := engineURLs{NATS: cfg.NATSURL, ClickHouse: cfg.ClickHouseURL}
	if err := checkCluster(cfg); err != nil {
		return nil, err
	}
	if cfg.NodeID == "" {
		host, _ := os.Hostname()
		cfg.NodeID = host
		if cfg.NodeID == "" {
			cfg.NodeID = "jobcast"
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	n := &node{cfg: cfg, log: log, serveErr: make(chan error, 1)}

	// Secrets: configured ones win; otherwise generated into the data dir.
	hashes, err := auth.LoadAPIKeyHashes(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if len(cfg.APIKeys) == 0 && len(hashes) == 0 {
		key, err := auth.GenerateAPIKey(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		n.APIKey = key
		cfg.APIKeys = append(cfg.APIKeys, key)
		fmt.Fprintf(out, "Generated a producer API key. It is shown only this once (the data dir keeps its hash):\n\n    %s\n\n", key)
	}
	apiKeys, err := auth.NewAPIKeys(cfg.APIKeys, hashes)
	if err != nil {
		return nil, err
	}
	if cfg.AdminToken == "" {
		tok, created, err := auth.LoadOrCreateAdminToken(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		cfg.AdminToken = tok
		if created {
			fmt.Fprintf(out, "Generated an admin token into %s\n", filepath.Join(cfg.DataDir, auth.AdminTokenFile))
		}
	}
	ring, err := auth.LoadOrCreateKeyring(cfg.DataDir, cfg.JWTSecret, clock.Now())
	if err != nil {
		return nil, err
	}
	tokens := auth.NewTokens(ring, cfg.TokenTTL, clock)

	engines, err := openJobEngines(ctx, cfg, urls, log)
	if err != nil {
		return nil, err
	}
	store := engines.store
	var spool *jobs.Spool
	if urls.NATS == "" {
		// A full disk or a read-only data dir does not stop delivery:
		// writes SQLite refuses are applied in memory and written later.
		spool = jobs.NewSpool(store, jobs.SpoolOptions{MaxWrites: cfg.SpoolMaxWrites, MaxBytes: cfg.SpoolMaxBytes, Clock: clock, Log: log})
		// The node is the embedded store's only writer, so a cache of
		// the jobs it commits is never older than the store.
		store = jobs.NewCachedStore(spool, 0)
	}
	n.store, n.closeEngines = store, engines.close
	events, err := openTelemetry(ctx, cfg, urls, log)
	if err != nil {
		store.Close()
		engines.close()
		return nil, fmt.Errorf("telemetry store: %w", err)
	}
	n.events = events
	n.recorder = telemetry.New(events, telemetry.Options{Node: cfg.NodeID, BufferSize: cfg.TelemetryBuffer, Clock: clock, Log: log})
	n.recorder.Start()
	exporter := promexport.New(n.recorder)
	exporter.WatchRecorder(n.recorder)
	if spool != nil {
		exporter.WatchSpool(spool)
	}
	n.evRetain = telemetry.NewRetention(events, clock, log, cfg.TelemetryRetention)
	n.evRetain.Start()

	catalog := jobcast.NewCatalog(cfg.Errors)
	broker := engines.broker
	svc := jobs.New(store, broker, catalog, clock, log)
	n.experiments, n.expStore, err = startExperiments(ctx, cfg, engines, events, clock, log)
	if err != nil {
		n.closeStores(context.Background())
		return nil, err
	}
	n.expRetain = experiment.NewRetention(n.expStore, clock, log, 2*cfg.JobRetention)
	n.expRetain.Start()
	if st, ok := n.expStore.(*nats.ExperimentStore); ok {
		// Experiments changed through another node apply here too.
		n.stopExpWatch, err = st.Watch(context.Background(), func(ctx context.Context) {
			if err := n.experiments.Reload(ctx); err != nil {
				log.Warn("experiments not reloaded after a change on another node", "err", err)
			}
		})
		if err != nil {
			n.closeStores(context.Background())
			return nil, err
		}
	}
	n.hub = hub.New(hub.Options{
		Config: cfg, Store: store, Broker: broker, Tokens: tokens,
		Catalog: catalog, Clock: clock, Log: log, NodeID: cfg.NodeID,
		Recorder: exporter, Params: n.experiments,
	})
	exporter.WatchHub(n.hub)
	svc.SetTelemetry(exporter, n.hub.ThrottledCount)
	n.retention = jobs.NewRetention(store, clock, log, cfg.JobRetention)
	n.retention.Start()
	metricsLib := metrics.New(events)
	graphql, err := gql.NewHandler(metricsLib, n.hub, gql.WithLog(log), gql.WithClock(clock), gql.WithExperiments(n.experiments))
	if err != nil {
		n.closeStores(context.Background())
		return nil, fmt.Errorf("GraphQL schema: %w", err)
	}
	var leader jobcast.Leader
	n.alertLease, err = engines.alertLease(ctx, cfg, clock, log)
	if err != nil {
		n.closeStores(context.Background())
		return nil, err
	}
	if n.alertLease != nil {
		leader = n.alertLease
	}
	n.alerts, n.alertStore, err = startAlerting(ctx, cfg, opts, engines, leader, events, metricsLib, clock, log)
	if err != nil {
		n.closeStores(context.Background())
		return nil, err
	}
	n.users, err = engines.openUserStore(ctx, cfg)
	if err != nil {
		n.closeStores(context.Background())
		return nil, fmt.Errorf("user store: %w", err)
	}
	nodeReg, err := engines.openNodeRegistry(ctx, clock)
	if err != nil {
		n.closeStores(context.Background())
		return nil, fmt.Errorf("node registry: %w", err)
	}
	n.reporter = newNodeReporter(nodeReg, n.hub, cfg.NodeID, clock, log)
	// One authenticator for the API and the dashboard: a revocation
	// through this node clears both at once.
	authn := auth.NewAuthenticator(cfg.AdminToken, n.users, clock, 0)
	// Config.Validate has checked the proxy entries.
	trust, _ := httputil.ParseProxyTrust(cfg.TrustedProxies)
	dash, err := dashboard.New(dashboard.Options{
		Metrics: metricsLib, Events: events, Jobs: svc, Live: n.hub,
		Nodes: nodeReg, NodeID: cfg.NodeID,
		Alerts: n.alerts, Experiments: n.experiments,
		AdminToken: cfg.AdminToken, PublicURL: cfg.PublicURL, Scheme: trust.Scheme,
		Users: authn, AllowedOrigins: cfg.AllowedOrigins,
		Clock: clock, Log: log,
	})
	if err != nil {
		n.closeStores(context.Background())
		return nil, err
	}
	n.api = httpapi.New(httpapi.Options{
		Config: cfg, Jobs: svc, Hub: n.hub, Tokens: tokens, APIKeys: apiKeys,
		Clock: clock, Log: log, Metrics: exporter.Handler(), Telemetry: events,
		MetricsLib: metricsLib, GraphQL: graphql, Dashboard: dash, Alerts: n.alerts.Handler(),
		Experiments: n.experiments.Handler(),
		Users:       authn, UserStore: n.users,
		Ready: func() error {
			_, err := store.GetJob(context.Background(), "readyz-probe")
			if errors.Is(err, jobcast.ErrJobNotFound) {
				return nil
			}
			return err
		},
	})

	ln, err := listen(cfg.Addr)
	if err != nil {
		n.closeStores(context.Background())
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	n.ln = ln
	n.srv = &http.Server{
		Handler:           n.api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	// Shutdown waits for handlers; the dashboard's live streams end here.
	n.srv.RegisterOnShutdown(dash.Close)
	go func() { n.serveErr <- n.srv.Serve(ln) }()
	if n.alertLease != nil {
		n.alertLease.Start()
	}
	n.alerts.Start()
	n.reporter.Start()
	n.cfg = cfg
	return n, nil
}

// URL is the node's base URL on loopback.
func (n *node) URL() string {
	addr := n.ln.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return fmt.Sprintf("http://%s", net.JoinHostPort(host, fmt.Sprint(addr.Port)))
}

// shutdown drains producers, closes clients with 1001, stops the HTTP server
// and closes the stores, within ctx.
func (n *node) shutdown(ctx context.Context) error {
	if d := n.cfg.ShutdownDelay; d > 0 {
		n.api.NotReady()
		n.log.Info("not ready; waiting before closing connections", "delay", d)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	n.api.Drain()
	var errs []error
	if err := n.hub.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("close client connections: %w", err))
	}
	if err := n.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop HTTP server: %w", err))
	}
	errs = append(errs, n.closeStores(ctx))
	return errors.Join(errs...)
}

// closeStores stops the background services, writes the buffered telemetry
// (the hub has recorded every disconnect by now) and closes the stores.
func (n *node) closeStores(ctx context.Context) error {
	var errs []error
	if n.reporter != nil {
		n.reporter.stop(ctx) // while the NATS connection is open
	}
	if n.alerts != nil {
		n.alerts.Stop() // before the stores its evaluations read and write
		if n.alertLease != nil {
			n.alertLease.Stop() // after the last evaluation: the next leader starts clean
		}
		if err := n.alertStore.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close alert store: %w", err))
		}
	}
	if n.stopExpWatch != nil {
		n.stopExpWatch()
	}
	if n.users != nil {
		if err := n.users.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close user store: %w", err))
		}
	}
	if n.expStore != nil {
		n.expRetain.Stop()
		if err := n.expStore.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close experiment store: %w", err))
		}
	}
	if n.retention != nil { // nil when a part started before it failed
		n.retention.Stop()
	}
	n.evRetain.Stop()
	if err := n.recorder.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("flush telemetry: %w", err))
	}
	if st := n.recorder.Stats(); st.Dropped > 0 || st.Lost > 0 {
		n.log.Warn("telemetry events were not stored", "dropped", st.Dropped, "lost", st.Lost)
	}
	if err := n.events.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close telemetry store: %w", err))
	}
	if err := n.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close store: %w", err))
	}
	n.closeEngines()
	return errors.Join(errs...)
}
