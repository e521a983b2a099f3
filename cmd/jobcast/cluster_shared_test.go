package main

import (
	"context"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/nats/natstest"
)

// TestClusterSharedConfig runs two full nodes on one NATS server: an
// experiment started through node A applies to node B's connections
// without a restart, and exactly one node holds the alert lease.
func TestClusterSharedConfig(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	urls := engineURLs{NATS: natstest.NewServer(t)}
	a, _ := startClusterNode(t, "node-a", urls)
	b, _ := startClusterNode(t, "node-b", urls)

	control, variant := int64(20_000), int64(25_000)
	if _, err := a.experiments.Create(ctx, jobcast.Experiment{ID: "hb-cluster", Parameter: jobcast.ParamHeartbeatInterval,
		Control: &control, Variant: &variant, Coverage: 1, Status: jobcast.ExperimentRunning}); err != nil {
		t.Fatal(err)
	}
	unit := jobcast.ExperimentUnit{UnitID: "job-1"}
	deadline := time.Now().Add(10 * time.Second)
	var got jobcast.ParamValues
	for len(got) == 0 {
		var err error
		if got, err = b.experiments.Assign(ctx, unit); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("node B does not apply the experiment created through node A after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	onA, err := a.experiments.Assign(ctx, unit)
	if err != nil || len(onA) != 1 || onA[0].Variant != got[0].Variant {
		t.Fatalf("node A assigned %+v (%v), node B %+v: the unit's arm must be the same on every node", onA, err, got)
	}

	for {
		la, lb := a.alertLease.IsLeader(), b.alertLease.IsLeader()
		if la && lb {
			t.Fatal("both nodes lead alerting")
		}
		if la || lb {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no node leads alerting after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
