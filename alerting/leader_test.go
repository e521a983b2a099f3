package alerting_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/alerting"
	"github.com/jobcast/jobcast/duckdb"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/metrics"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/nats/natstest"
)

// TestAlertLeader runs two nodes' alerting services over one NATS server
// (shared alert store, lease) and one telemetry store: only the lease
// holder notifies a firing alert; when it dies without giving the lease up,
// the other takes over once the lease expires, does not notify the alert
// again (its state, with the receivers it was sent to, is in the shared
// store), and sends the resolution.
func TestAlertLeader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const ttl = 15 * time.Second
	url := natstest.NewServer(t)
	tel, err := duckdb.Open(ctx, filepath.Join(t.TempDir(), "telemetry.duckdb"), duckdb.Options{Threads: 1, MemoryLimit: "256MB"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Close() })
	clock := clocktest.New(t0)
	rec := newRecorder(t, 200, false)
	cfg := alerting.Config{Receivers: []alerting.Receiver{{Name: "hook", Type: alerting.TypeWebhook, URL: rec.srv.URL}}}

	type node struct {
		nc    interface{ Close() }
		lease *nats.Lease
		svc   *alerting.Service
		stop  func()
	}
	start := func(name string) *node {
		nc := natstest.Connect(t, url)
		kv := nats.KVConfig{Memory: true}
		store, err := nats.NewAlertStore(ctx, nc, kv)
		if err != nil {
			t.Fatal(err)
		}
		lease, err := nats.NewLease(ctx, nc, nats.LeaseConfig{KVConfig: kv, Holder: name, TTL: ttl, Clock: clock})
		if err != nil {
			t.Fatal(err)
		}
		svc, err := alerting.New(ctx, alerting.Options{Config: cfg, Store: store, Metrics: metrics.New(tel), Telemetry: tel, Clock: clock, Leader: lease})
		if err != nil {
			t.Fatal(err)
		}
		lease.Start()
		clock.Advance(0) // the lease's first round
		n := &node{nc: nc, lease: lease, svc: svc}
		n.stop = func() {
			svc.Stop()
			lease.Stop()
		}
		t.Cleanup(n.stop)
		return n
	}
	a := start("a")
	b := start("b")
	if !a.lease.IsLeader() || b.lease.IsLeader() {
		t.Fatalf("leaders: a %v, b %v; want a only", a.lease.IsLeader(), b.lease.IsLeader())
	}
	burst := func() {
		if err := tel.Write(ctx, sessions(clock.Now().Add(-time.Second), "csv_import", 3, 1)); err != nil {
			t.Fatal(err)
		}
	}
	burst()
	b.svc.Evaluate(ctx)
	a.svc.Evaluate(ctx)
	b.svc.Evaluate(ctx)
	var msg alerting.WebhookMessage
	if err := json.Unmarshal(rec.wait(t, 0), &msg); err != nil || msg.Status != "firing" {
		t.Fatalf("first notification %+v (%v), want firing", msg, err)
	}
	// The follower shows the leader's alert, with what was sent.
	if got := b.svc.Alerts(); len(got) != 1 || got[0].State != jobcast.AlertFiring || got[0].Sent["hook"].IsZero() {
		t.Fatalf("follower's alerts %+v", got)
	}

	// A dies: its connection drops, so it cannot give the lease up, and its
	// service stops. B takes over within the TTL and a renewal period.
	// Nothing has advanced the clock since A took the lease at t0, so
	// A's lease expires at t0+ttl.
	a.nc.Close()
	a.lease.Stop() // stops its renewals; the release fails
	a.svc.Stop()
	for !b.lease.IsLeader() {
		if clock.Now().Sub(t0) > ttl+ttl/3 {
			t.Fatalf("b does not lead %v after a's last renewal", clock.Now().Sub(t0))
		}
		clock.Advance(time.Second)
	}
	if took := clock.Now().Sub(t0); took < ttl {
		t.Fatalf("b took the lease %v after a's last renewal, before it expired (%v)", took, ttl)
	}
	// Still firing: B, now leader, sends nothing new.
	burst()
	b.svc.Evaluate(ctx)
	if got := b.svc.Alerts(); len(got) != 1 || got[0].State != jobcast.AlertFiring || !got[0].FiredAt.Equal(t0) {
		t.Fatalf("after the takeover: %+v", got)
	}
	// The errors leave the window: B sends the resolution, and that is the
	// second and last notification.
	clock.Advance(11 * time.Minute)
	b.svc.Evaluate(ctx)
	if err := json.Unmarshal(rec.wait(t, 1), &msg); err != nil || msg.Status != "resolved" {
		t.Fatalf("second notification %+v (%v), want the resolution (no firing again)", msg, err)
	}
	b.stop()
	if n := rec.count(); n != 2 {
		t.Fatalf("%d notifications, want 2", n)
	}
}
