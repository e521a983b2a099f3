package nats_test

import (
	"context"
	"testing"
	"time"

	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/nats/natstest"
	natsgo "github.com/nats-io/nats.go"
)

const leaseTTL = 15 * time.Second

// newLease returns a lease that is not started: the test runs its rounds
// with RenewLease, on clock.
func newLease(t *testing.T, nc *natsgo.Conn, holder string, clock *clocktest.Clock) *nats.Lease {
	t.Helper()
	l, err := nats.NewLease(context.Background(), nc, nats.LeaseConfig{
		KVConfig: nats.KVConfig{BucketPrefix: "L_", Memory: true}, Name: t.Name(), Holder: holder, TTL: leaseTTL, Clock: clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func leaders(ls ...*nats.Lease) []bool {
	out := make([]bool, len(ls))
	for i, l := range ls {
		out[i] = l.IsLeader()
	}
	return out
}

func wantLeaders(t *testing.T, what string, ls []*nats.Lease, want ...bool) {
	t.Helper()
	got := leaders(ls...)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: leaders %v, want %v", what, got, want)
		}
	}
}

// TestLeaseHandover: one holder at a time; a stalled holder stops leading
// before the lease expires, and only then may another node take it.
func TestLeaseHandover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := natstest.NewServer(t)
	clock := clocktest.New(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
	a := newLease(t, natstest.Connect(t, url), "node", clock)
	b := newLease(t, natstest.Connect(t, url), "node", clock) // same name: still two holders
	ls := []*nats.Lease{a, b}
	wantLeaders(t, "before any round", ls, false, false)
	nats.RenewLease(a, ctx)
	nats.RenewLease(b, ctx)
	wantLeaders(t, "after a took it", ls, true, false)

	// A renews on time: it keeps the lease past the first TTL.
	clock.Advance(leaseTTL / 3)
	nats.RenewLease(a, ctx)
	clock.Advance(leaseTTL * 2 / 3)
	nats.RenewLease(b, ctx)
	wantLeaders(t, "a renewed", ls, true, false)

	// A stalls (no more rounds). It stops leading a fifth of the TTL
	// before its lease expires; B cannot take it until then.
	clock.Advance(leaseTTL*4/5 - leaseTTL*2/3)
	wantLeaders(t, "a stalled", ls, false, false)
	nats.RenewLease(b, ctx)
	wantLeaders(t, "a's lease not yet expired", ls, false, false)
	clock.Advance(leaseTTL / 5)
	nats.RenewLease(b, ctx)
	wantLeaders(t, "a's lease expired", ls, false, true)
	// A wakes up: it sees B's lease and does not lead.
	nats.RenewLease(a, ctx)
	wantLeaders(t, "a woke up", ls, false, true)
}

// TestLeaseStepsDownWhenRenewalFails: a holder that cannot reach NATS
// stops leading at once.
func TestLeaseStepsDownWhenRenewalFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := natstest.NewServer(t)
	clock := clocktest.New(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
	nc := natstest.Connect(t, url)
	a := newLease(t, nc, "a", clock)
	nats.RenewLease(a, ctx)
	if !a.IsLeader() {
		t.Fatal("a does not lead")
	}
	nc.Close()
	clock.Advance(leaseTTL / 3)
	nats.RenewLease(a, ctx)
	if a.IsLeader() {
		t.Fatal("a still leads after a failed renewal")
	}
}

// TestLeaseStopReleases: a leader that stops gives the lease up, and the
// next node takes it at its next round rather than after the TTL.
func TestLeaseStopReleases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := natstest.NewServer(t)
	clock := clocktest.New(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
	a := newLease(t, natstest.Connect(t, url), "a", clock)
	b := newLease(t, natstest.Connect(t, url), "b", clock)
	a.Start()
	clock.Advance(0) // a's first round
	b.Start()
	clock.Advance(0)
	wantLeaders(t, "started", []*nats.Lease{a, b}, true, false)
	a.Stop()
	a.Stop() // idempotent
	nats.RenewLease(b, ctx)
	wantLeaders(t, "a stopped", []*nats.Lease{a, b}, false, true)
	b.Stop()
}
