package nats_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/alertstoretest"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/nats/natstest"
)

// TestAlertStore runs the conformance suite: one server, a bucket and
// stream of their own per subtest, each handle on a connection of its own
// (a node).
func TestAlertStore(t *testing.T) {
	t.Parallel()
	url := natstest.NewServer(t)
	var n atomic.Int64
	alertstoretest.Run(t, func(t *testing.T) alertstoretest.Open {
		cfg := nats.KVConfig{BucketPrefix: fmt.Sprintf("A%d_", n.Add(1)), Memory: true}
		return func(t *testing.T) jobcast.AlertStore {
			t.Helper()
			s, err := nats.NewAlertStore(context.Background(), natstest.Connect(t, url), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	})
}
