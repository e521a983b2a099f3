package jobs_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/protocol"
)

// BenchmarkSpoolOverhead measures what the spool adds to an append when the
// store takes every write (the normal case): the embedded node's
// CachedStore over the spool against the CachedStore alone, both over the
// in-memory store so the spool's share is not lost in SQLite's.
func BenchmarkSpoolOverhead(b *testing.B) {
	stores := []struct {
		name string
		open func() jobcast.JobStore
	}{
		{"cached", func() jobcast.JobStore { return jobs.NewCachedStore(inmem.NewJobStore(), 0) }},
		{"cached+spool", func() jobcast.JobStore {
			return jobs.NewCachedStore(jobs.NewSpool(inmem.NewJobStore(), jobs.SpoolOptions{}), 0)
		}},
	}
	events := []protocol.ProducerEvent{{Type: protocol.EventProgress, Payload: json.RawMessage(`{"processedCount":1}`)}}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			store := st.open()
			defer store.Close()
			svc := jobs.New(store, inmem.NewBroker(), jobcast.NewCatalog(nil), jobcast.SystemClock{}, discardLog())
			ctx := context.Background()
			job, err := svc.Create(ctx, jobs.CreateRequest{Pipeline: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				j, _, err := svc.Append(ctx, job.JobID, events)
				if err != nil || !svc.Durable(j) {
					b.Fatal(err)
				}
			}
		})
	}
}
