// Package noderegistrytest is the conformance suite of
// jobcast.NodeRegistry: the in-process registry (embedded) and the NATS KV
// one (cluster) both run it, so that the dashboard sums the same nodes in
// both modes.
package noderegistrytest

import (
	"context"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/clocktest"
)

// TTL is the time to live every backend is opened with.
const TTL = 15 * time.Second

// Open returns two handles on one fresh backend (two nodes of a cluster)
// whose statuses expire TTL after their LastSeen on clock.
type Open func(t *testing.T, clock jobcast.Clock) (a, b jobcast.NodeRegistry)

var epoch = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// Run runs the suite, each subtest on a fresh backend.
func Run(t *testing.T, open Open) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, clock *clocktest.Clock, a, b jobcast.NodeRegistry)
	}{
		{"PublishList", testPublishList},
		{"Replace", testReplace},
		{"Expire", testExpire},
		{"Remove", testRemove},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := clocktest.New(epoch)
			a, b := open(t, clock)
			tc.fn(t, clock, a, b)
		})
	}
}

func status(id string, conns, jobs int64, seen time.Time) jobcast.NodeStatus {
	return jobcast.NodeStatus{ID: id, Version: "v1.2.3", StartedAt: epoch.Add(-time.Hour),
		Connections: conns, LiveJobs: jobs, LastSeen: seen}
}

func publish(t *testing.T, r jobcast.NodeRegistry, st jobcast.NodeStatus) {
	t.Helper()
	if err := r.Publish(context.Background(), st); err != nil {
		t.Fatalf("Publish %s: %v", st.ID, err)
	}
}

// expect checks that r lists want, in order, field by field.
func expect(t *testing.T, r jobcast.NodeRegistry, want ...jobcast.NodeStatus) {
	t.Helper()
	got, err := r.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("List = %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Version != w.Version || g.Connections != w.Connections || g.LiveJobs != w.LiveJobs ||
			!g.StartedAt.Equal(w.StartedAt) || !g.LastSeen.Equal(w.LastSeen) {
			t.Errorf("List[%d] = %+v, want %+v", i, g, w)
		}
	}
}

// Each node sees every node's status, ordered by id.
func testPublishList(t *testing.T, clock *clocktest.Clock, a, b jobcast.NodeRegistry) {
	expect(t, a)
	now := clock.Now()
	nb := status("node-b", 7, 2, now)
	na := status("node-a", 3, 1, now)
	publish(t, b, nb)
	publish(t, a, na)
	expect(t, a, na, nb)
	expect(t, b, na, nb)
}

// A node's later status replaces its earlier one.
func testReplace(t *testing.T, clock *clocktest.Clock, a, b jobcast.NodeRegistry) {
	publish(t, a, status("node-a", 3, 1, clock.Now()))
	clock.Advance(5 * time.Second)
	later := status("node-a", 10, 4, clock.Now())
	publish(t, a, later)
	expect(t, b, later)
}

// A status not refreshed within the TTL drops out; one that is refreshed
// stays; one stamped by a clock slightly ahead counts as fresh.
func testExpire(t *testing.T, clock *clocktest.Clock, a, b jobcast.NodeRegistry) {
	start := clock.Now()
	publish(t, a, status("node-a", 1, 1, start))
	publish(t, b, status("node-b", 2, 1, start))
	clock.Advance(TTL / 2)
	fresh := status("node-b", 5, 2, clock.Now())
	publish(t, b, fresh)
	clock.Advance(TTL)
	expect(t, a, fresh) // at TTL since its last publish: still there
	clock.Advance(time.Millisecond)
	expect(t, a)
	expect(t, b)
	ahead := status("node-c", 1, 0, clock.Now().Add(time.Second))
	publish(t, a, ahead)
	expect(t, b, ahead)
}

// A removed node is gone at once; removing an unknown one is no error.
func testRemove(t *testing.T, clock *clocktest.Clock, a, b jobcast.NodeRegistry) {
	na, nb := status("node-a", 1, 1, clock.Now()), status("node-b", 2, 1, clock.Now())
	publish(t, a, na)
	publish(t, b, nb)
	if err := a.Remove(context.Background(), "node-a"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	expect(t, b, nb)
	if err := b.Remove(context.Background(), "never-there"); err != nil {
		t.Fatalf("Remove unknown: %v", err)
	}
	expect(t, a, nb)
}
