package inmem_test

import (
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/internal/storetest"
)

func TestJobStore(t *testing.T) {
	t.Parallel()
	storetest.RunJobStoreTests(t, func(t *testing.T) jobcast.JobStore {
		return inmem.NewJobStore()
	})
}
