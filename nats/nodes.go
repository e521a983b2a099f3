package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobcast/jobcast"
)

var _ jobcast.NodeRegistry = (*NodeRegistry)(nil)

// nodeKeyPrefix starts every key of the nodes bucket: node.<id>.
const nodeKeyPrefix = "node."

// NodeRegistryConfig configures a NodeRegistry.
type NodeRegistryConfig struct {
	KVConfig
	// TTL is how long a status lives without a refresh. Required: it is
	// also the bucket's TTL, so NATS itself drops the entries of dead
	// nodes, and changing it updates the bucket.
	TTL time.Duration
	// Clock reads now for the expiry check (default: the system clock).
	Clock jobcast.Clock
}

// NodeRegistry is the cluster jobcast.NodeRegistry: one KV bucket holding
// node.<id> → status. The bucket's TTL removes what dead nodes left; List
// also applies the TTL to LastSeen itself, so that a status is not counted
// for up to another TTL while NATS gets round to expiring it (this assumes
// node clocks agree to well within the TTL, as NTP gives).
type NodeRegistry struct {
	kv    jetstream.KeyValue
	clock jobcast.Clock
	ttl   time.Duration
}

// NewNodeRegistry creates or updates the bucket and returns a registry on
// nc. The caller owns nc.
func NewNodeRegistry(ctx context.Context, nc *natsgo.Conn, cfg NodeRegistryConfig) (*NodeRegistry, error) {
	if cfg.TTL <= 0 {
		return nil, errors.New("node registry: TTL is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = jobcast.SystemClock{}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	storage := jetstream.FileStorage
	if cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	name := cfg.name("NODES")
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: "jobcast nodes' live figures (connections, live jobs), refreshed every few seconds",
		History:     1,
		TTL:         cfg.TTL,
		Storage:     storage,
		Replicas:    max(cfg.Replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("create KV bucket %s: %w", name, err)
	}
	return &NodeRegistry{kv: kv, clock: cfg.Clock, ttl: cfg.TTL}, nil
}

// Publish implements jobcast.NodeRegistry.
func (r *NodeRegistry) Publish(ctx context.Context, st jobcast.NodeStatus) error {
	data, err := json.Marshal(&st)
	if err != nil {
		return fmt.Errorf("publish node status: %w", err)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if _, err := r.kv.Put(ctx, nodeKeyPrefix+keyPart(st.ID), data); err != nil {
		return fmt.Errorf("publish node status: %w", err)
	}
	return nil
}

// List implements jobcast.NodeRegistry.
func (r *NodeRegistry) List(ctx context.Context) ([]jobcast.NodeStatus, error) {
	entries, err := loadAll(ctx, r.kv, nodeKeyPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	now := r.clock.Now()
	out := make([]jobcast.NodeStatus, 0, len(entries))
	for _, e := range entries {
		var st jobcast.NodeStatus
		if json.Unmarshal(e.Value(), &st) != nil {
			continue // written by a newer or broken node: not ours to count
		}
		if jobcast.NodeStatusExpired(st.LastSeen, now, r.ttl) {
			continue
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b jobcast.NodeStatus) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Remove implements jobcast.NodeRegistry.
func (r *NodeRegistry) Remove(ctx context.Context, id string) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if err := r.kv.Purge(ctx, nodeKeyPrefix+keyPart(id)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("remove node %s: %w", id, err)
	}
	return nil
}
