package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/internal/periodic"
	"github.com/jobcast/jobcast/nats"
)

// Every node publishes its live figures every nodeStatusInterval; a node
// not heard from for nodeStatusTTL (three missed publishes) drops out of
// the dashboard's sums.
const (
	nodeStatusInterval = 5 * time.Second
	nodeStatusTTL      = 3 * nodeStatusInterval
)

// openNodeRegistry opens where the nodes' live figures meet: in process
// embedded (this node only), a NATS KV bucket in cluster mode.
func (e *jobEngines) openNodeRegistry(ctx context.Context, clock jobcast.Clock) (jobcast.NodeRegistry, error) {
	if e.nc == nil {
		return inmem.NewNodeRegistry(clock, nodeStatusTTL), nil
	}
	return nats.NewNodeRegistry(ctx, e.nc, nats.NodeRegistryConfig{TTL: nodeStatusTTL, Clock: clock})
}

// liveFigures is what the reporter reads: the hub.
type liveFigures interface {
	ConnCount() int64
	LiveJobs() int64
}

// nodeReporter publishes this node's live figures to the registry every
// nodeStatusInterval, and removes them when the node stops.
type nodeReporter struct {
	*periodic.Runner
	reg     jobcast.NodeRegistry
	live    liveFigures
	clock   jobcast.Clock
	log     *slog.Logger
	id      string
	started time.Time
}

func newNodeReporter(reg jobcast.NodeRegistry, live liveFigures, id string, clock jobcast.Clock, log *slog.Logger) *nodeReporter {
	r := &nodeReporter{reg: reg, live: live, clock: clock, log: log, id: id, started: clock.Now().UTC()}
	r.Runner = periodic.New(clock, nodeStatusInterval, r.publish)
	return r
}

// status is this node's figures now.
func (r *nodeReporter) status() jobcast.NodeStatus {
	return jobcast.NodeStatus{ID: r.id, Version: version, StartedAt: r.started,
		Connections: r.live.ConnCount(), LiveJobs: r.live.LiveJobs(), LastSeen: r.clock.Now().UTC()}
}

func (r *nodeReporter) publish(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, nodeStatusInterval)
	defer cancel()
	if err := r.reg.Publish(ctx, r.status()); err != nil {
		// The next publish tries again; other nodes' dashboards miss this
		// one's figures meanwhile.
		r.log.Warn("node status not published", "err", err)
	}
}

// stop ends the publishing and takes the node out of the registry, so the
// other nodes stop counting it at once rather than after the TTL.
func (r *nodeReporter) stop(ctx context.Context) {
	r.Stop()
	if err := r.reg.Remove(ctx, r.id); err != nil {
		r.log.Warn("node status not removed; it expires by itself", "err", err, "ttl", nodeStatusTTL)
	}
}
