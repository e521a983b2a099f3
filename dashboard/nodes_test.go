package dashboard_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/dashboard"
	"github.com/jobcast/jobcast/inmem"
)

// failingRegistry cannot be read.
type failingRegistry struct{ jobcast.NodeRegistry }

func (failingRegistry) List(context.Context) ([]jobcast.NodeStatus, error) {
	return nil, errors.New("nats down")
}

// With a node registry the live counts are sums over the nodes: this
// node's fresh from the hub, the others' as published, until they expire.
func TestOverviewSumsNodes(t *testing.T) {
	t.Parallel()
	const ttl = 15 * time.Second
	var reg *inmem.NodeRegistry
	e := newEnv(t, func(o *dashboard.Options) {
		reg = inmem.NewNodeRegistry(o.Clock, ttl)
		o.Nodes, o.NodeID = reg, "node-self"
	})
	ctx := context.Background()
	started := end.Add(-time.Hour)
	for _, st := range []jobcast.NodeStatus{
		{ID: "node-self", Version: "v9", StartedAt: started, Connections: 99, LiveJobs: 99, LastSeen: end},
		{ID: "node-other", Version: "v9", StartedAt: started, Connections: 5, LiveJobs: 2, LastSeen: end},
	} {
		if err := reg.Publish(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	ov := e.overview(t, "range=1h")
	if ov.Health.LiveConnections != 6 || ov.LiveJobCount != 3 {
		t.Errorf("live connections %d, jobs %d; want 1+5 and 1+2", ov.Health.LiveConnections, ov.LiveJobCount)
	}
	if len(ov.Nodes) != 2 || ov.Nodes[0].ID != "node-other" || ov.Nodes[1].ID != "node-self" {
		t.Fatalf("nodes = %+v", ov.Nodes)
	}
	if self := ov.Nodes[1]; self.Connections != 1 || self.LiveJobs != 1 || self.Version != "v9" || !self.StartedAt.Equal(started) {
		t.Errorf("this node = %+v: want the hub's counts with the registry's version and start", self)
	}
	if len(ov.LiveJobs) != 1 || ov.LiveJobs[0] != "job-03" {
		t.Errorf("liveJobs = %v, want this node's job-03", ov.LiveJobs)
	}

	// The other node stops publishing: after the TTL it no longer counts.
	e.clock.Advance(ttl + time.Second)
	ov = e.overview(t, "range=1h")
	if ov.Health.LiveConnections != 1 || len(ov.Nodes) != 1 || ov.Nodes[0].ID != "node-self" {
		t.Errorf("after the TTL: live connections %d, nodes %+v", ov.Health.LiveConnections, ov.Nodes)
	}
}

// Without a registry (or when it cannot be read) the node counts itself.
func TestOverviewLiveWithoutRegistry(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		reg  jobcast.NodeRegistry
	}{{"none", nil}, {"unreadable", failingRegistry{}}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(o *dashboard.Options) { o.Nodes, o.NodeID = tc.reg, "solo" })
			ov := e.overview(t, "range=1h")
			if ov.Health.LiveConnections != 1 || ov.LiveJobCount != 1 || len(ov.Nodes) != 1 || ov.Nodes[0].ID != "solo" {
				t.Errorf("live connections %d, jobs %d, nodes %+v", ov.Health.LiveConnections, ov.LiveJobCount, ov.Nodes)
			}
		})
	}
}
