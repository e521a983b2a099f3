package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/dashboard"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/nats/natstest"
)

// TestClusterNodeCounts runs two full nodes on one NATS server with clients
// on both: each node's dashboard shows the sum and both nodes; a node that
// vanished without a word leaves the sums after the TTL, one that shuts
// down leaves them at once.
func TestClusterNodeCounts(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	urls := engineURLs{NATS: natstest.NewServer(t)}
	a, _ := startClusterNode(t, "node-a", urls)
	b, stopB := startClusterNode(t, "node-b", urls)
	wsURL := func(n *node) string { return "ws" + strings.TrimPrefix(n.URL(), "http") + "/ws/progress" }
	prod := client.NewProducer(a.URL(), clusterAPIKey)

	// Two watchers of one job on A, one of another job on B.
	watch := func(n *node, count int) {
		t.Helper()
		tk, err := prod.CreateJob(ctx, client.CreateJobRequest{Pipeline: "csv_import", TotalCount: 10})
		if err != nil {
			t.Fatal(err)
		}
		for range count {
			w, err := client.NewWatcher(client.Config{URL: wsURL(n), Token: tk.Token,
				MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			wctx, stop := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = w.Run(wctx); close(done) }()
			t.Cleanup(func() { stop(); <-done })
		}
	}
	watch(a, 2)
	watch(b, 1)
	waitUntil(t, "clients on both nodes", func() bool { return a.hub.ConnCount() == 2 && b.hub.ConnCount() == 1 })
	// Publish now rather than wait for the next tick.
	a.reporter.publish(ctx)
	b.reporter.publish(ctx)
	for _, n := range []*node{a, b} {
		waitOverview(t, n, "both nodes summed", func(ov *dashboard.Overview) bool {
			return ov.Health.LiveConnections == 3 && ov.LiveJobCount == 2 && nodeIDs(ov) == "node-a,node-b"
		})
	}

	// A node vanishes without a word (a crash): its last status stops
	// counting once the TTL has passed since it was published.
	reg, err := nats.NewNodeRegistry(ctx, natstest.Connect(t, urls.NATS), nats.NodeRegistryConfig{TTL: nodeStatusTTL})
	if err != nil {
		t.Fatal(err)
	}
	seen := time.Now().Add(-nodeStatusTTL + 5*time.Second)
	if err := reg.Publish(ctx, jobcast.NodeStatus{ID: "node-crashed", Connections: 100, LastSeen: seen}); err != nil {
		t.Fatal(err)
	}
	waitOverview(t, a, "the crashed node counted", func(ov *dashboard.Overview) bool {
		return ov.Health.LiveConnections == 103 && nodeIDs(ov) == "node-a,node-b,node-crashed"
	})
	waitOverview(t, a, "the crashed node gone after the TTL", func(ov *dashboard.Overview) bool {
		return ov.Health.LiveConnections == 3 && nodeIDs(ov) == "node-a,node-b"
	})
	if time.Since(seen) < nodeStatusTTL {
		t.Errorf("the crashed node dropped out %s before its TTL", nodeStatusTTL-time.Since(seen))
	}

	// B shuts down: it leaves the registry at once, not after the TTL.
	stopB()
	if list, err := reg.List(ctx); err != nil || len(list) != 1 || list[0].ID != "node-a" {
		t.Errorf("registry after B's shutdown = %+v, %v; want node-a only", list, err)
	}
	waitOverview(t, a, "node B gone", func(ov *dashboard.Overview) bool {
		return ov.Health.LiveConnections == 2 && ov.LiveJobCount == 1 && nodeIDs(ov) == "node-a"
	})
}

func nodeIDs(ov *dashboard.Overview) string {
	ids := make([]string, len(ov.Nodes))
	for i, n := range ov.Nodes {
		ids[i] = n.ID
	}
	return strings.Join(ids, ",")
}

// waitUntil polls cond until it holds or 30 s pass.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a timing assumption
	}
}

// waitOverview polls n's dashboard overview until cond holds.
func waitOverview(t *testing.T, n *node, what string, cond func(*dashboard.Overview) bool) {
	t.Helper()
	var last string
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := call(t, http.MethodGet, n.URL()+"/dashboard/api/overview?range=1h", "cluster-admin-token-0123456789", "")
		var ov dashboard.Overview
		if code == http.StatusOK && json.Unmarshal([]byte(body), &ov) == nil && cond(&ov) {
			return
		}
		last = body
		if time.Now().After(deadline) {
			if len(last) > 600 {
				last = last[:600]
			}
			t.Fatalf("%s: timed out waiting for %s; last answer %d %s", n.cfg.NodeID, what, code, last)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}
