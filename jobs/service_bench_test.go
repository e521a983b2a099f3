package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/protocol"
	"github.com/jobcast/jobcast/sqlite"
)

// BenchmarkAppend measures jobs.Service.Append end to end below HTTP: load
// the job, apply the events, store the job (and log non-progress messages)
// in one transaction, publish to a broker without subscribers. The SQLite
// store is the embedded server's; in-memory is for comparison.
func BenchmarkAppend(b *testing.B) {
	progress := func(i int) protocol.ProducerEvent {
		return protocol.ProducerEvent{Type: protocol.EventProgress, Payload: json.RawMessage(
			fmt.Sprintf(`{"processedCount":%d,"totalCount":1000000,"currentItem":"items/%d.json"}`, i, i))}
	}
	errorEvent := protocol.ProducerEvent{Type: protocol.EventError, Payload: json.RawMessage(
		`{"code":"E_GEMINI_TIMEOUT","message":"item 17 timed out","retryable":true}`)}
	batch := make([]protocol.ProducerEvent, 100)
	for i := range batch {
		batch[i] = progress(i + 1)
	}
	cases := []struct {
		name   string
		events []protocol.ProducerEvent
	}{
		{"progress", []protocol.ProducerEvent{progress(1)}},
		{"progress-batch100", batch},
		{"error", []protocol.ProducerEvent{errorEvent}}, // also appends to the message log
	}
	stores := []struct {
		name string
		open func(b *testing.B) jobcast.JobStore
	}{
		{"sqlite", func(b *testing.B) jobcast.JobStore {
			st, err := sqlite.OpenJobStore(context.Background(), filepath.Join(b.TempDir(), "jobcast.db"))
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
		{"inmem", func(*testing.B) jobcast.JobStore { return inmem.NewJobStore() }},
	}
	for _, st := range stores {
		for _, tc := range cases {
			b.Run(st.name+"/"+tc.name, func(b *testing.B) {
				store := st.open(b)
				defer store.Close()
				svc := jobs.New(store, inmem.NewBroker(), jobcast.NewCatalog(nil), jobcast.SystemClock{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
				ctx := context.Background()
				job, err := svc.Create(ctx, jobs.CreateRequest{Pipeline: "bench", TotalCount: 1000000})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, _, err := svc.Append(ctx, job.JobID, tc.events); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*len(tc.events))/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
