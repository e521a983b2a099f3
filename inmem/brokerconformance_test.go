package inmem_test

import (
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/internal/brokertest"
)

func TestBrokerConformance(t *testing.T) {
	t.Parallel()
	brokertest.RunBrokerTests(t, func(t *testing.T) (jobcast.Broker, jobcast.Broker) {
		b := inmem.NewBroker() // one process: both "nodes" are the same broker
		return b, b
	})
}
