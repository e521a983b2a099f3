package duckdb_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/duckdb"
	"github.com/jobcast/jobcast/protocol"
	"github.com/jobcast/jobcast/telemetry"
)

var (
	benchPipelines = []string{"csv_import", "ai_scan", "video_transcode", "report_export", "bulk_email"}
	benchApps      = []string{"3.2.1", "3.2.0", "3.1.4", "3.1.3", "3.0.9", "2.9.12"}
	benchOSes      = []string{"iOS 18.1", "iOS 18.0", "iOS 17.6", "Android 15", "Android 14", "Android 13", "Android 12", "iPadOS 18.1", "iOS 16.7", "Android 11"}
	benchNetworks  = []string{"wifi", "cellular", "5g", "ethernet"}
	benchReasons   = []string{"client_closed", "heartbeat_timeout", "going_away", "job_finished", "slow_consumer"}
)

// realisticEvent returns the i-th event of a plausible stream: mostly
// sampled heartbeats, a connection's connected/disconnected pair, job
// summaries, some errors and exposures. A job has about 40 events over 4
// connections; timestamps advance 1 ms per event.
func realisticEvent(i int) jobcast.Event {
	job := i / 40
	conn := i / 10
	e := jobcast.Event{
		TS:             time.Date(2025, 11, 26, 5, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		Node:           fmt.Sprintf("node-%d", job%3),
		JobID:          fmt.Sprintf("job-%08x-%04x", job*2654435761%(1<<32), job%65536),
		Pipeline:       benchPipelines[job%len(benchPipelines)],
		ConnID:         fmt.Sprintf("c-%x", conn*40503),
		AppVersion:     benchApps[conn%len(benchApps)],
		OSVersion:      benchOSes[conn%len(benchOSes)],
		NetworkType:    benchNetworks[conn%len(benchNetworks)],
		DeviceModel:    fmt.Sprintf("model-%d", conn*7%50),
		ReconnectCount: int64(conn % 4),
	}
	switch k := i % 40; {
	case k == 0:
		e.Event = jobcast.EventJobStarted
		e.TotalCount = int64(100 + job%900)
	case k == 39:
		e.Event = jobcast.EventJobCompleted
		e.DurationMs = int64(30_000 + job%60_000)
		e.TotalCount = int64(100 + job%900)
		e.SuccessCount = e.TotalCount - int64(job%7)
		e.FailureCount = int64(job % 7)
		e.MessagesSent = 200 + int64(job%300)
		e.BytesSent = e.MessagesSent * 180
		e.ProgressSent = e.MessagesSent - 10
		e.ThrottledCount = int64(job % 50)
	case k%10 == 1:
		e.Event = jobcast.EventConnected
		if conn%4 != 0 {
			e.Event = jobcast.EventReconnected
		}
	case k%10 == 9:
		e.Event = jobcast.EventDisconnected
		e.CloseCode = protocol.CloseGoingAway
		e.Reason = benchReasons[conn%len(benchReasons)]
		e.DurationMs = int64(5_000 + conn%20_000)
		e.MessagesSent = 50 + int64(conn%100)
		e.BytesSent = e.MessagesSent * 180
		e.MessagesReceived = 5 + int64(conn%10)
		e.ProgressSent = e.MessagesSent - 3
	case k == 17:
		e.Event = jobcast.EventError
		e.ErrorCode = protocol.ErrGeminiTimeout
		e.Provider = "gemini"
		e.Retryable = true
	case k == 2:
		e.Event = jobcast.EventExposure
		e.ExperimentID = "exp-throttle"
		e.Variant = []string{"a", "b"}[job%2]
		e.Param = "throttle_ms"
		e.Value = []string{"100", "250"}[job%2]
	default:
		e.Event = jobcast.EventHeartbeat
		e.RTTMs = 20 + float64(i%97)*1.5
		e.SampleInterval = 10
	}
	return e
}

const benchBatch = 4096

func benchBatches(n int) [][]jobcast.Event {
	batches := make([][]jobcast.Event, n)
	for b := range batches {
		batches[b] = make([]jobcast.Event, benchBatch)
		for i := range batches[b] {
			batches[b][i] = realisticEvent(b*benchBatch + i)
		}
	}
	return batches
}

// thresholds are the checkpoint thresholds the benchmarks compare: the
// store's default and DuckDB's.
var thresholds = []string{duckdb.DefaultCheckpointThreshold, "16MB"}

// BenchmarkWrite measures sustained ingestion through Write, one batch of
// 4096 realistic events per op, and the longest Write (the one that waits
// for an automatic checkpoint), which the recorder's buffer has to absorb.
func BenchmarkWrite(b *testing.B) {
	batches := benchBatches(64)
	ctx := context.Background()
	for _, th := range thresholds {
		b.Run("checkpoint="+th, func(b *testing.B) {
			s, err := duckdb.Open(ctx, filepath.Join(b.TempDir(), "bench.duckdb"), duckdb.Options{CheckpointThreshold: th})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var longest time.Duration
			cpu := cpuSeconds(b)
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				if err := s.Write(ctx, batches[i%len(batches)]); err != nil {
					b.Fatal(err)
				}
				longest = max(longest, time.Since(start))
			}
			b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(longest.Milliseconds()), "max-write-ms")
			b.ReportMetric((cpuSeconds(b)-cpu)*1e6/float64(b.N*benchBatch), "cpu-µs/event")
		})
	}
}

// rowGroup is DuckDB's row group size: a transaction that appends at least
// this many rows to a table writes them compressed into the file before it
// commits and logs only their blocks in the WAL.
const rowGroup = 122880

// BenchmarkRowGroups measures Write with batches of one DuckDB row
// group (telemetry.DefaultMaxBatchSize, what the recorder writes a backlog
// in when its ring is larger), at the store's default checkpoint threshold;
// an op is one batch, bytes/event the file's size after Close.
func BenchmarkRowGroups(b *testing.B) {
	events := make([]jobcast.Event, 2*rowGroup)
	for i := range events {
		events[i] = realisticEvent(i)
	}
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "bench.duckdb")
	s, err := duckdb.Open(ctx, path, duckdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var longest time.Duration
	cpu := cpuSeconds(b)
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		j := i % 2 * rowGroup
		if err := s.Write(ctx, events[j:j+rowGroup]); err != nil {
			b.Fatal(err)
		}
		longest = max(longest, time.Since(start))
	}
	b.ReportMetric(float64(b.N*rowGroup)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(longest.Milliseconds()), "max-write-ms")
	b.ReportMetric((cpuSeconds(b)-cpu)*1e6/float64(b.N*rowGroup), "cpu-µs/event")
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	if fi, err := os.Stat(path); err == nil {
		b.ReportMetric(float64(fi.Size())/float64(b.N*rowGroup), "bytes/event")
	}
}

// BenchmarkIngest measures sustained ingestion the way a node does it:
// events go into a telemetry.Recorder with its default options but for the
// ring's size, and its writer puts them into the store; an op is 4096
// realistic events recorded, and events/s counts events committed by the
// time Stop has flushed the last of them. The producer waits for room in
// the ring instead of letting it drop, so a backlog builds and the recorder
// writes bigger batches, as it does under load: whole DuckDB row groups
// (telemetry.DefaultMaxBatchSize) with the node's default telemetryBuffer of
// 131,072, at most the whole ring with a ring of 65,536.
// bytes/event is the file's size after Close over the events written.
func BenchmarkIngest(b *testing.B) {
	batches := benchBatches(64)
	ctx := context.Background()
	for _, ring := range []int{65536, 131072} {
		b.Run(fmt.Sprintf("buffer=%d", ring), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "bench.duckdb")
			s, err := duckdb.Open(ctx, path, duckdb.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			r := telemetry.New(s, telemetry.Options{Node: "bench", BufferSize: ring})
			r.Start()
			start := time.Now()
			cpu := cpuSeconds(b)
			for i := 0; b.Loop(); i++ {
				batch := batches[i%len(batches)]
				for j := 0; j < len(batch); j += 512 {
					for r.Stats().Buffered > ring-512 {
						time.Sleep(100 * time.Microsecond)
					}
					for _, e := range batch[j : j+512] {
						r.Record(e)
					}
				}
			}
			if err := r.Stop(ctx); err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			st := r.Stats()
			if st.Dropped != 0 || st.Lost != 0 || st.Written != uint64(b.N*benchBatch) {
				b.Fatalf("stats %+v, want %d written, none dropped or lost", st, b.N*benchBatch)
			}
			b.ReportMetric(float64(st.Written)/elapsed.Seconds(), "events/s")
			b.ReportMetric((cpuSeconds(b)-cpu)*1e6/float64(st.Written), "cpu-µs/event")
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			if fi, err := os.Stat(path); err == nil {
				b.ReportMetric(float64(fi.Size())/float64(st.Written), "bytes/event")
			}
		})
	}
}

// BenchmarkBytesPerEvent writes 1M realistic events in batches of 4096,
// checkpoints, closes and reports the file's size per event and the
// ingestion rate over the million.
func BenchmarkBytesPerEvent(b *testing.B) {
	const total = 1 << 20
	batches := benchBatches(total / benchBatch)
	ctx := context.Background()
	for _, th := range thresholds {
		b.Run("checkpoint="+th, func(b *testing.B) {
			for b.Loop() {
				path := filepath.Join(b.TempDir(), "bytes.duckdb")
				s, err := duckdb.Open(ctx, path, duckdb.Options{CheckpointThreshold: th})
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				for _, batch := range batches {
					if err := s.Write(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(total/time.Since(start).Seconds(), "events/s")
				if _, err := s.Query(ctx, "CHECKPOINT"); err != nil {
					b.Fatal(err)
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				var size int64
				for _, p := range []string{path, path + ".wal"} {
					if fi, err := os.Stat(p); err == nil {
						size += fi.Size()
					}
				}
				b.ReportMetric(float64(size)/total, "bytes/event")
			}
		})
	}
}

// BenchmarkRetention measures whether DeleteBefore gives disk space back:
// the file's size after 1M events, after deleting the older half, after
// writing 512k more, and after deleting everything.
func BenchmarkRetention(b *testing.B) {
	const total = 1 << 20
	batches := benchBatches((total + total/2) / benchBatch)
	ctx := context.Background()
	for b.Loop() {
		path := filepath.Join(b.TempDir(), "retention.duckdb")
		s, err := duckdb.Open(ctx, path, duckdb.Options{})
		if err != nil {
			b.Fatal(err)
		}
		size := func(unit string) {
			fi, err := os.Stat(path)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(fi.Size())/1e6, unit)
		}
		write := func(batches [][]jobcast.Event) {
			for _, batch := range batches {
				if err := s.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
		}
		write(batches[:total/benchBatch])
		if _, err := s.Query(ctx, "CHECKPOINT"); err != nil {
			b.Fatal(err)
		}
		size("MB-1M")
		half := batches[total/benchBatch/2][0].TS
		if n, err := s.DeleteBefore(ctx, half); err != nil || n != total/2 {
			b.Fatalf("DeleteBefore = %d, %v", n, err)
		}
		size("MB-deleted-half")
		write(batches[total/benchBatch:])
		if _, err := s.Query(ctx, "CHECKPOINT"); err != nil {
			b.Fatal(err)
		}
		size("MB-refilled")
		if _, err := s.DeleteBefore(ctx, time.Now()); err != nil {
			b.Fatal(err)
		}
		size("MB-deleted-all")
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuSeconds is the CPU time the process has used (user and system, every
// thread: Go's and DuckDB's). Under contention from other processes the
// wall-clock rate varies with their load; CPU time per event much less.
func cpuSeconds(b *testing.B) float64 {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
