package telemetry_test

import (
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/telemetry"
)

// BenchmarkRecord is the hot path every connection pays: copying one event
// into the ring. The target is ≤ 1 µs and 0 allocations.
func BenchmarkRecord(b *testing.B) {
	store := &memStore{}
	const ring = 1 << 16
	newRecorder := func() *telemetry.Recorder {
		return telemetry.New(store, telemetry.Options{Node: "bench", BufferSize: ring, BatchSize: ring, FlushInterval: time.Hour})
	}
	r := newRecorder()
	ev := jobcast.Event{
		TS: time.Now(), Event: jobcast.EventHeartbeat, JobID: "job_0123456789", Pipeline: "csv_import",
		ConnID: "node-1f", AppVersion: "3.4.0", OSVersion: "iOS 18.1", NetworkType: "cellular",
		DeviceModel: "iPhone15,3", RTTMs: 87.5, SampleInterval: 1,
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%ring == ring-1 {
			// A fresh ring, outside the timer, so no event is dropped.
			b.StopTimer()
			r = newRecorder()
			b.StartTimer()
		}
		r.Record(ev)
	}
}

// BenchmarkRecordParallel records from every core at once, as the hub does.
func BenchmarkRecordParallel(b *testing.B) {
	store := &memStore{}
	r := telemetry.New(store, telemetry.Options{BufferSize: 1 << 20, BatchSize: 4096, FlushInterval: 10 * time.Millisecond})
	r.Start()
	defer r.Stop(b.Context())
	ev := jobcast.Event{Event: jobcast.EventHeartbeat, JobID: "job_0123456789", RTTMs: 87.5}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Record(ev)
		}
	})
	b.ReportMetric(float64(r.Stats().Dropped), "dropped")
}
