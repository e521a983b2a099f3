package nats_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/brokertest"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/nats/natstest"
)

func TestBroker(t *testing.T) {
	t.Parallel()
	url := natstest.NewServer(t)
	var n atomic.Int64
	brokertest.RunBrokerTests(t, func(t *testing.T) (jobcast.Broker, jobcast.Broker) {
		// Two connections are two nodes; a prefix per test keeps tests
		// apart on the shared server.
		prefix := fmt.Sprintf("b%d", n.Add(1))
		return nats.NewBroker(natstest.Connect(t, url), prefix, nil),
			nats.NewBroker(natstest.Connect(t, url), prefix, nil)
	})
}
