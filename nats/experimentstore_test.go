package nats_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/experiment"
	"github.com/jobcast/jobcast/internal/experimentstoretest"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/nats/natstest"
)

// TestExperimentStore runs the conformance suite: one server, buckets of
// their own per subtest, each handle on a connection of its own (a node).
func TestExperimentStore(t *testing.T) {
	t.Parallel()
	url := natstest.NewServer(t)
	var n atomic.Int64
	experimentstoretest.Run(t, func(t *testing.T) experimentstoretest.Open {
		cfg := nats.KVConfig{BucketPrefix: fmt.Sprintf("T%d_", n.Add(1)), Memory: true}
		return func(t *testing.T) experimentstoretest.Store {
			t.Helper()
			st, err := nats.NewExperimentStore(context.Background(), natstest.Connect(t, url), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
	})
}

// TestExperimentsAcrossNodes: an experiment started through one node's
// service enrolls units on another node without a restart, and stopping it
// there ends it here; both nodes give a unit the same arm.
func TestExperimentsAcrossNodes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := natstest.NewServer(t)
	node := func() *experiment.Service {
		st, err := nats.NewExperimentStore(ctx, natstest.Connect(t, url), nats.KVConfig{})
		if err != nil {
			t.Fatal(err)
		}
		svc, err := experiment.New(ctx, experiment.Options{Store: st})
		if err != nil {
			t.Fatal(err)
		}
		stop, err := st.Watch(ctx, func(ctx context.Context) {
			// A reload that stopping the watch (the test's cleanup)
			// cancels is expected; any other failure is not.
			if err := svc.Reload(ctx); err != nil && ctx.Err() == nil {
				t.Error(err)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		return svc
	}
	a, b := node(), node()
	control, variant := int64(30_000), int64(45_000)
	if _, err := a.Create(ctx, jobcast.Experiment{ID: "hb", Parameter: jobcast.ParamHeartbeatInterval,
		Control: &control, Variant: &variant, Coverage: 1, Status: jobcast.ExperimentRunning}); err != nil {
		t.Fatal(err)
	}
	unit := jobcast.ExperimentUnit{UnitID: "job-1"}
	got := waitAssign(t, b, unit, true)
	if v, _ := got.Value(jobcast.ParamHeartbeatInterval); v != control && v != variant {
		t.Fatalf("node B assigned %+v", got)
	}
	if !got[0].Expose {
		t.Fatalf("the unit's first connection must expose: %+v", got)
	}
	again, err := a.Assign(ctx, unit)
	if err != nil || len(again) != 1 || again[0].Variant != got[0].Variant || again[0].Expose {
		t.Fatalf("node A assigned %+v (%v), node B %+v", again, err, got)
	}
	if _, err := b.Update(ctx, "hb", []byte(`{"status":"stopped"}`)); err != nil {
		t.Fatal(err)
	}
	waitAssign(t, a, unit, false)
}

// waitAssign polls svc until u is enrolled (or not), as a reload lands.
func waitAssign(t *testing.T, svc *experiment.Service, u jobcast.ExperimentUnit, enrolled bool) jobcast.ParamValues {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := svc.Assign(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		if (len(got) > 0) == enrolled {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("unit %s enrolled=%v after 10s, want %v", u.UnitID, len(got) > 0, enrolled)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
