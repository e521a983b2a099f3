package nats_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/userstoretest"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/nats/natstest"
)

// TestUserStore runs the conformance suite: one server, a bucket of its own
// per subtest, each handle on a connection of its own (a node).
func TestUserStore(t *testing.T) {
	t.Parallel()
	url := natstest.NewServer(t)
	var n atomic.Int64
	userstoretest.Run(t, func(t *testing.T) userstoretest.Open {
		cfg := nats.KVConfig{BucketPrefix: fmt.Sprintf("U%d_", n.Add(1)), Memory: true}
		return func(t *testing.T) jobcast.UserStore {
			t.Helper()
			s, err := nats.NewUserStore(context.Background(), natstest.Connect(t, url), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	})
}
