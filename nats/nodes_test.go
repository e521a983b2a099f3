package nats_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/noderegistrytest"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/nats/natstest"
)

// TestNodeRegistry runs the conformance suite: one server, a bucket of its
// own per subtest, each handle on a connection of its own (a node).
func TestNodeRegistry(t *testing.T) {
	t.Parallel()
	url := natstest.NewServer(t)
	var n atomic.Int64
	noderegistrytest.Run(t, func(t *testing.T, clock jobcast.Clock) (a, b jobcast.NodeRegistry) {
		cfg := nats.NodeRegistryConfig{
			KVConfig: nats.KVConfig{BucketPrefix: fmt.Sprintf("N%d_", n.Add(1)), Memory: true},
			TTL:      noderegistrytest.TTL, Clock: clock,
		}
		open := func() jobcast.NodeRegistry {
			r, err := nats.NewNodeRegistry(context.Background(), natstest.Connect(t, url), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		return open(), open()
	})
}

// The bucket carries the TTL, so NATS drops what a dead node left even when
// no node lists the bucket.
func TestNodeRegistryBucketTTL(t *testing.T) {
	t.Parallel()
	url := natstest.NewServer(t)
	ctx := context.Background()
	if _, err := nats.NewNodeRegistry(ctx, natstest.Connect(t, url), nats.NodeRegistryConfig{KVConfig: nats.KVConfig{Memory: true}}); err == nil {
		t.Error("no error without a TTL")
	}
	nc := natstest.Connect(t, url)
	if _, err := nats.NewNodeRegistry(ctx, nc, nats.NodeRegistryConfig{KVConfig: nats.KVConfig{Memory: true}, TTL: noderegistrytest.TTL}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "JOBCAST_NODES")
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != noderegistrytest.TTL {
		t.Errorf("bucket TTL = %s, want %s", st.TTL(), noderegistrytest.TTL)
	}
}
