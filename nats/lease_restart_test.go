package nats_test

import (
	"context"
	"testing"
	"time"

	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/nats/natstest"
)

// TestLeaseNATSRestart: while NATS is down the leader's renewal fails
// within a third of the TTL and it stops leading; once NATS is back (file
// storage) it takes its lease again, and the alert state written before
// the outage is there.
func TestLeaseNATSRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv.URL)
	clock := clocktest.New(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
	// A short TTL: each round's requests are bounded by a third of it, in
	// real time.
	const ttl = 600 * time.Millisecond
	l, err := nats.NewLease(ctx, nc, nats.LeaseConfig{Holder: "a", TTL: ttl, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	nats.RenewLease(l, ctx)
	if !l.IsLeader() {
		t.Fatal("a does not lead")
	}
	alerts, err := nats.NewAlertStore(ctx, nc, nats.KVConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := alerts.SetAPIRules(ctx, "rules: []\n"); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	clock.Advance(ttl / 3)
	start := time.Now()
	nats.RenewLease(l, ctx)
	if l.IsLeader() {
		t.Fatal("a still leads while NATS is down")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the failed renewal took %v", took)
	}

	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for !l.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("a does not lead again 10s after NATS came back")
		}
		clock.Advance(ttl / 3)
		nats.RenewLease(l, ctx)
	}
	if doc, err := alerts.APIRules(ctx); err != nil || doc != "rules: []\n" {
		t.Fatalf("API rules after the restart: %q %v", doc, err)
	}
}
