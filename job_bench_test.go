package jobcast_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

// BenchmarkApplyEvents runs one progress event through the job state
// machine, including encoding the frame every watcher will share.
func BenchmarkApplyEvents(b *testing.B) {
	catalog := jobcast.NewCatalog(nil)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	job := &jobcast.Job{JobState: protocol.JobState{
		JobID: "job_0192f3a4b5c6d7e8f9a0b1c2", Pipeline: "enrichment",
		Status: protocol.StatusRunning, TotalCount: 10000, CreatedAt: now, UpdatedAt: now,
	}}
	events := []protocol.ProducerEvent{{
		Type:    protocol.EventProgress,
		Payload: json.RawMessage(`{"processedCount":4711,"totalCount":10000,"currentItem":"items/4711.json"}`),
	}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jobcast.ApplyEvents(job, events, catalog, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyParsedEvents applies a parsed batch of 20 progress events,
// what the throttled load scenario posts per request: the counts come from
// the parser and no frame is encoded until a connection sends one.
func BenchmarkApplyParsedEvents(b *testing.B) {
	catalog := jobcast.NewCatalog(nil)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	job := &jobcast.Job{JobState: protocol.JobState{
		JobID: "job_0192f3a4b5c6d7e8f9a0b1c2", Pipeline: "enrichment",
		Status: protocol.StatusRunning, TotalCount: 10000, CreatedAt: now, UpdatedAt: now,
	}}
	body := []byte{'['}
	for i := range 20 {
		if i > 0 {
			body = append(body, ',')
		}
		body = fmt.Appendf(body, `{"type":"progress","payload":{"processedCount":%d,"sentNs":%d}}`, 1000+i, 1764133200123456789+i)
	}
	body = append(body, ']')
	events, err := protocol.ParseProducerEvents(body)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jobcast.ApplyEvents(job, events, catalog, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
}
