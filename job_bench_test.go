package jobcast_test

import (
	"encoding/json"
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
