package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/clickhouse"
	"github.com/jobcast/jobcast/duckdb"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/sqlite"
)

// engineURLs choose a node's engines by URL scheme (docs/cluster.md). An
// empty URL keeps the embedded engine in the data dir.
type engineURLs struct {
	// NATS (nats://, tls://, ws://, wss://) holds job state and message logs
	// in JetStream and fans messages out between nodes.
	NATS string
	// ClickHouse (clickhouse://host:9000/database, the native protocol)
	// holds telemetry.
	ClickHouse string
}

// checkCluster refuses a cluster node whose secrets would be its own: the
// secrets generated into a data dir differ per node, so a token minted or
// a producer key generated on one node would fail on the others.
func checkCluster(cfg jobcast.Config) error {
	if cfg.NATSURL == "" {
		return nil
	}
	if cfg.JWTSecret == "" {
		return errors.New("cluster mode (NATS) needs JOBCAST_JWT_SECRET, the same on every node: tokens are checked by whichever node a client reaches")
	}
	if len(cfg.APIKeys) == 0 {
		return errors.New("cluster mode (NATS) needs JOBCAST_API_KEYS, the same on every node: producers may reach any node")
	}
	return nil
}

// jobEngines are the job store and the broker, and what closes what they
// share (a NATS connection) after the store is closed. nc is that
// connection in cluster mode (nil embedded): the experiment and alert
// stores and the alert lease use it too.
type jobEngines struct {
	store  jobcast.JobStore
	broker jobcast.Broker
	close  func()
	nc     *natsgo.Conn
}

// experimentStore is an experiment store the node closes.
type experimentStore interface {
	jobcast.ExperimentStore
	Close() error
}

// openExperimentStore opens the experiments beside the job store: in the
// data dir's SQLite file, or in NATS KV, where every node sees them.
func (e *jobEngines) openExperimentStore(ctx context.Context, cfg jobcast.Config) (experimentStore, error) {
	if e.nc == nil {
		return sqlite.OpenExperimentStore(ctx, filepath.Join(cfg.DataDir, "jobcast.db"))
	}
	return nats.NewExperimentStore(ctx, e.nc, nats.KVConfig{})
}

// openAlertStore opens the alert state beside the job store: SQLite, or
// NATS KV shared by every node.
func (e *jobEngines) openAlertStore(ctx context.Context, cfg jobcast.Config) (jobcast.AlertStore, error) {
	if e.nc == nil {
		return sqlite.OpenAlertStore(ctx, filepath.Join(cfg.DataDir, "jobcast.db"))
	}
	return nats.NewAlertStore(ctx, e.nc, nats.KVConfig{})
}

// userStore is a user store the node closes.
type userStore interface {
	jobcast.UserStore
	Close() error
}

// openUserStore opens the users beside the job store: SQLite, or NATS KV,
// where every node sees the same users (and revocations).
func (e *jobEngines) openUserStore(ctx context.Context, cfg jobcast.Config) (userStore, error) {
	if e.nc == nil {
		return sqlite.OpenUserStore(ctx, filepath.Join(cfg.DataDir, "jobcast.db"))
	}
	return nats.NewUserStore(ctx, e.nc, nats.KVConfig{})
}

// alertLease returns the lease that makes one cluster node the alert
// evaluator, not yet started; nil embedded, where the node always leads.
func (e *jobEngines) alertLease(ctx context.Context, cfg jobcast.Config, clock jobcast.Clock, log *slog.Logger) (*nats.Lease, error) {
	if e.nc == nil {
		return nil, nil
	}
	return nats.NewLease(ctx, e.nc, nats.LeaseConfig{Name: "alerting", Holder: cfg.NodeID, Clock: clock, Log: log})
}

// openJobEngines opens SQLite and the in-process broker, or NATS.
func openJobEngines(ctx context.Context, cfg jobcast.Config, urls engineURLs, log *slog.Logger) (*jobEngines, error) {
	if urls.NATS == "" {
		store, err := sqlite.OpenJobStore(ctx, filepath.Join(cfg.DataDir, "jobcast.db"))
		if err != nil {
			return nil, err
		}
		return &jobEngines{store: store, broker: inmem.NewBroker(), close: func() {}}, nil
	}
	u, err := url.Parse(urls.NATS)
	if err != nil {
		return nil, fmt.Errorf("NATS URL: %w", err)
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return nil, fmt.Errorf("NATS URL: unknown scheme %q: use nats://host:4222", u.Scheme)
	}
	nc, err := natsgo.Connect(urls.NATS,
		natsgo.Name("jobcast "+cfg.NodeID),
		natsgo.MaxReconnects(-1), // keep trying: clients resume from the store meanwhile
		natsgo.ErrorHandler(func(_ *natsgo.Conn, sub *natsgo.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("NATS error; clients will catch up on resume", "subject", subject, "err", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	store, err := nats.NewJobStore(ctx, nc, nats.JobStoreConfig{
		// Past the job retention, and past any running job's idle time.
		MaxAge: max(30*24*time.Hour, 2*cfg.JobRetention),
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	// Clients stay connected through a NATS outage: the broker catches
	// them up from the store on what NATS lost meanwhile.
	broker := nats.NewBroker(nc, "", log).CatchUpFrom(store)
	return &jobEngines{store: store, broker: broker, close: nc.Close, nc: nc}, nil
}

// openTelemetry opens DuckDB in the data dir, or ClickHouse.
func openTelemetry(ctx context.Context, cfg jobcast.Config, urls engineURLs, log *slog.Logger) (jobcast.TelemetryStore, error) {
	if urls.ClickHouse == "" {
		return duckdb.Open(ctx, filepath.Join(cfg.DataDir, "telemetry.duckdb"), duckdb.Options{})
	}
	u, err := url.Parse(urls.ClickHouse)
	if err != nil {
		return nil, fmt.Errorf("ClickHouse URL: %w", err)
	}
	switch u.Scheme {
	case "clickhouse", "tcp":
	case "http", "https":
		return nil, errors.New("ClickHouse URL: the HTTP interface is not supported; use the native protocol, clickhouse://host:9000/database")
	default:
		return nil, fmt.Errorf("ClickHouse URL: unknown scheme %q: use clickhouse://host:9000/database", u.Scheme)
	}
	return clickhouse.Open(ctx, clickhouse.Config{URL: urls.ClickHouse, Retention: cfg.TelemetryRetention, Log: log})
}
