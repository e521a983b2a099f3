package inmem_test

import (
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/internal/noderegistrytest"
)

func TestNodeRegistry(t *testing.T) {
	t.Parallel()
	noderegistrytest.Run(t, func(t *testing.T, clock jobcast.Clock) (a, b jobcast.NodeRegistry) {
		r := inmem.NewNodeRegistry(clock, noderegistrytest.TTL)
		return r, r
	})
}
