package jobcast

import (
	"context"
	"time"
)

// NodeStatus is one node's live figures as it last published them. Each
// node knows only its own connections; the dashboard of any node sums the
// statuses of all of them.
type NodeStatus struct {
	ID        string    `json:"id"`
	Version   string    `json:"version,omitempty"`
	StartedAt time.Time `json:"startedAt"`
	// Connections is the node's open WebSocket connections.
	Connections int64 `json:"connections"`
	// LiveJobs is the jobs with at least one open connection on the node.
	LiveJobs int64 `json:"liveJobs"`
	// LastSeen is when the node published this, on its own clock.
	LastSeen time.Time `json:"lastSeen"`
}

// NodeRegistry is where the nodes of a cluster tell each other their live
// figures: each publishes its status every few seconds, and a status not
// refreshed within the registry's TTL is gone, so a node that died without
// a word drops out by itself. The embedded engine keeps it in process
// (inmem), the cluster one in a NATS KV bucket (nats).
type NodeRegistry interface {
	// Publish replaces the status of node st.ID.
	Publish(ctx context.Context, st NodeStatus) error
	// List returns the statuses whose LastSeen is within the TTL of now,
	// ordered by ID.
	List(ctx context.Context) ([]NodeStatus, error)
	// Remove forgets a node at once: its clean shutdown.
	Remove(ctx context.Context, id string) error
}

// NodeStatusExpired says whether a status last seen at seen is past ttl at
// now: the one rule every NodeRegistry applies. A status stamped in the
// future (a clock ahead of ours) counts as fresh.
func NodeStatusExpired(seen, now time.Time, ttl time.Duration) bool {
	return now.Sub(seen) > ttl
}
