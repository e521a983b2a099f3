package hub_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/bench"
	"github.com/jobcast/jobcast/internal/jobcasttest"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/protocol"
)

// startFanoutServer starts an in-memory server with throttling off and
// limits out of the way, creates nJobs jobs and connects watchersPerJob raw
// clients to each. Clients close before the server on cleanup.
func startFanoutServer(b *testing.B, nJobs, watchersPerJob int, record bool) (*jobcasttest.Server, []string, bench.Watchers) {
	b.Helper()
	srv := jobcasttest.Start(b, jobcasttest.Options{Config: jobcast.Config{
		ThrottleDisabled:    true,
		MaxConnsPerIP:       1 << 20,
		MaxConnsPerJob:      1 << 20,
		NewConnsPerSecPerIP: 1 << 20,
	}})
	ctx := context.Background()
	ids := make([]string, nJobs)
	var tickets []bench.Ticket
	for i := range ids {
		job, err := srv.Jobs.Create(ctx, jobs.CreateRequest{JobID: fmt.Sprintf("bench-%05d", i), Pipeline: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = job.JobID
		tok, _, err := srv.Tokens.Issue(job.JobID)
		if err != nil {
			b.Fatal(err)
		}
		for range watchersPerJob {
			tickets = append(tickets, bench.Ticket{JobID: job.JobID, Token: tok})
		}
	}
	ws, err := bench.DialAll(ctx, bench.DialOptions{URL: srv.WSURL, RecordLatency: record}, tickets)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bench.CloseAll(ws) }) // runs before the server's cleanup
	return srv, ids, ws
}

func appendVia(srv *jobcasttest.Server) bench.AppendFunc {
	return func(ctx context.Context, id string, events []protocol.ProducerEvent) error {
		_, _, err := srv.Jobs.Append(ctx, id, events)
		return err
	}
}

// BenchmarkFanoutOneJob measures frames/s through the hub for one job and N
// watchers: jobs.Service.Append on the in-memory store, the in-process
// broker, every connection's queue and writer, loopback TCP, and raw
// WebSocket readers in this same process. One op is one progress event.
func BenchmarkFanoutOneJob(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("watchers=%d", n), func(b *testing.B) {
			srv, ids, ws := startFanoutServer(b, 1, n, false)
			bench.RunFanout(b, bench.FanoutOptions{
				Jobs: ids, WatchersPerJob: n, Append: appendVia(srv), Clients: ws,
			})
		})
	}
}

// BenchmarkLatency measures publish-to-client latency at 1,000 connections
// (100 jobs × 10 watchers) at a steady publish rate: each progress payload
// carries time.Now().UnixNano() taken just before Append, and each client
// subtracts it from its receive time, on the same clock. One op is one event
// (10 frames); ns/op is just the pacing.
func BenchmarkLatency(b *testing.B) {
	const nJobs, perJob = 100, 10
	for _, framesPerSec := range []int{1000, 10000, 30000} {
		b.Run(fmt.Sprintf("frames=%d/s", framesPerSec), func(b *testing.B) {
			srv, ids, ws := startFanoutServer(b, nJobs, perJob, true)
			interval := time.Second * perJob / time.Duration(framesPerSec)
			ctx := context.Background()
			sent := make([]int64, nJobs)
			var start time.Time
			i := 0
			for b.Loop() {
				if i == 0 {
					start = time.Now()
				} else if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
					time.Sleep(d)
				}
				j := i % nJobs
				sent[j]++
				if _, _, err := srv.Jobs.Append(ctx, ids[j], bench.ProgressEvent(sent[j], time.Now().UnixNano())); err != nil {
					b.Fatal(err)
				}
				i++
			}
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			for k, w := range ws {
				if err := w.WaitFrames(ctx, sent[k/perJob]); err != nil {
					b.Fatal(err)
				}
			}
			lat := bench.Latencies(ws)
			slices.Sort(lat)
			if want := i * perJob; len(lat) != want {
				b.Fatalf("got %d latency samples, want %d", len(lat), want)
			}
			us := func(p float64) float64 { return float64(bench.Percentile(lat, p)) / 1e3 }
			b.ReportMetric(us(50), "p50-µs")
			b.ReportMetric(us(99), "p99-µs")
			b.ReportMetric(us(99.9), "p999-µs")
			b.ReportMetric(float64(lat[len(lat)-1])/1e3, "max-µs")
			b.ReportMetric(float64(len(lat)), "samples")
		})
	}
}
