package inmem

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jobcast/jobcast"
)

var _ jobcast.NodeRegistry = (*NodeRegistry)(nil)

// NodeRegistry is the in-process jobcast.NodeRegistry of an embedded node:
// it only ever holds that node, but lets the dashboard read live figures
// the same way in both modes.
type NodeRegistry struct {
	clock jobcast.Clock
	ttl   time.Duration

	mu    sync.Mutex
	nodes map[string]jobcast.NodeStatus
}

// NewNodeRegistry returns an empty registry whose statuses expire ttl
// after their LastSeen, on clock.
func NewNodeRegistry(clock jobcast.Clock, ttl time.Duration) *NodeRegistry {
	return &NodeRegistry{clock: clock, ttl: ttl, nodes: map[string]jobcast.NodeStatus{}}
}

// Publish implements jobcast.NodeRegistry.
func (r *NodeRegistry) Publish(_ context.Context, st jobcast.NodeStatus) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nodes[st.ID] = st
	return nil
}

// List implements jobcast.NodeRegistry.
func (r *NodeRegistry) List(context.Context) ([]jobcast.NodeStatus, error) {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]jobcast.NodeStatus, 0, len(r.nodes))
	for id, st := range r.nodes {
		if jobcast.NodeStatusExpired(st.LastSeen, now, r.ttl) {
			delete(r.nodes, id)
			continue
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b jobcast.NodeStatus) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Remove implements jobcast.NodeRegistry.
func (r *NodeRegistry) Remove(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.nodes, id)
	return nil
}
