package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/duckdb"
	"github.com/jobcast/jobcast/metrics"
)

// benchVersion names the generated database: change it whenever genEvents
// changes, so that a stale cached file is not measured.
const benchVersion = "v1"

const (
	benchEvents = 10_000_000
	benchDays   = 30
)

// benchStart is the first instant of the generated 30 days.
var benchStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// BenchmarkMetrics computes every metric over 10 million events spanning 30
// days, in four shapes: the whole 30 days as one number; the 30 days by
// network type in 1-day buckets (the dashboard's 30d trend chart), from
// midnight and from 13:00; the last 24 hours by network type in 1-hour
// buckets. The daily rollups of the 30 days are built first, as a node's
// retention sweep would have.
//
// The events are generated once (about 90 s) into a DuckDB file in
// os.TempDir() named by benchVersion and reused by later runs.
func BenchmarkMetrics(b *testing.B) {
	if os.Getenv("JOBCAST_BENCH_METRICS") != "1" {
		b.Skip("set JOBCAST_BENCH_METRICS=1 to run: the first run generates 10 million events (about 90 s, 320 MB in " + os.TempDir() + ", kept for later runs)")
	}
	ctx := context.Background()
	path, err := benchDB(ctx, b)
	if err != nil {
		b.Fatal(err)
	}
	store, err := duckdb.Open(ctx, path, duckdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	lib := metrics.New(store)
	end := benchStart.Add(benchDays * 24 * time.Hour)
	// The rollups of the 30 days, as a node's retention sweep builds them
	// (once: they stay in the file).
	start := time.Now()
	if n, err := store.Rollup(ctx, end); err != nil {
		b.Fatal(err)
	} else if n > 0 {
		b.Logf("built the rollups of %d days in %s", n, time.Since(start).Round(time.Millisecond))
	}
	shapes := []struct {
		name string
		q    metrics.Query
	}{
		{"30d", metrics.Query{From: benchStart, To: end}},
		// One number over a window that ends now: 29 whole days from
		// rollups, the cut first and last days from events, in one
		// statement; overall and by a dimension, as the dashboard's tiles
		// and segments ask.
		{"30d_at_13h", metrics.Query{From: benchStart.Add(13 * time.Hour), To: end.Add(-11 * time.Hour)}},
		{"30d_at_13h_by_network", metrics.Query{From: benchStart.Add(13 * time.Hour), To: end.Add(-11 * time.Hour), GroupBy: []string{"network_type"}}},
		{"7d_at_13h_by_app", metrics.Query{From: end.Add(-7*24*time.Hour - 11*time.Hour), To: end.Add(-11 * time.Hour), GroupBy: []string{"app_version"}}},
		{"30d_by_network_1d", metrics.Query{From: benchStart, To: end, GroupBy: []string{"network_type"}, Bucket: 24 * time.Hour}},
		// The dashboard's 30d range ends now, not at midnight: its first
		// and last daily buckets are cut and read events, the 29 whole
		// days between them rollups.
		{"30d_at_13h_by_network_1d", metrics.Query{From: benchStart.Add(13 * time.Hour), To: end.Add(-11 * time.Hour), GroupBy: []string{"network_type"}, Bucket: 24 * time.Hour}},
		{"24h_by_network_1h", metrics.Query{From: end.Add(-24 * time.Hour), To: end, GroupBy: []string{"network_type"}, Bucket: time.Hour}},
	}
	for _, s := range shapes {
		for _, d := range metrics.Definitions() {
			q := s.q
			q.Metric = d.Name
			b.Run(s.name+"/"+d.Name, func(b *testing.B) {
				for b.Loop() {
					res, err := lib.Compute(ctx, q)
					if err != nil {
						b.Fatal(err)
					}
					if len(res.Points) == 0 {
						b.Fatal("no points")
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
			})
		}
		b.Run(s.name+"/top_errors", func(b *testing.B) {
			q := s.q
			q.GroupBy, q.Bucket = nil, 0
			for b.Loop() {
				if _, err := lib.TopErrors(ctx, q, 10); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
		})
	}
}

// benchDB returns the path of the generated database, generating it first
// when no earlier run left it.
func benchDB(ctx context.Context, b *testing.B) (string, error) {
	path := filepath.Join(os.TempDir(), "jobcast-metrics-bench-"+benchVersion+".duckdb")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	tmp := path + ".partial"
	os.Remove(tmp)
	os.Remove(tmp + ".wal")
	start := time.Now()
	store, err := duckdb.Open(ctx, tmp, duckdb.Options{})
	if err != nil {
		return "", err
	}
	n, err := genEvents(ctx, store)
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	b.Logf("generated %d events into %s in %s", n, path, time.Since(start).Round(time.Second))
	return path, os.Rename(tmp, path)
}

// Dimension values of the generated clients, with a skew like real
// traffic: the first values are the most common.
var (
	benchPipelines = []string{"csv_import", "ai_scan", "batch_enrichment", "pdf_export", "video_transcode"}
	benchApps      = []string{"3.4.1", "3.4.0", "3.3.2", "3.3.0", "3.2.5", "3.1.0", "2.9.8", "2.8.0"}
	benchOSes      = []string{"iOS 18.1", "iOS 17.6", "Android 15", "Android 14", "Android 13", "iOS 16.7", "Android 12", "macOS 15", "Windows 11", "Android 11"}
	benchNetworks  = []string{"wifi", "cellular", "ethernet", "unknown"}
	benchErrors    = []struct {
		code, provider string
		retryable      bool
	}{
		{"E_GEMINI_TIMEOUT", "gemini", true}, {"E_ENRICHMENT_FAILED", "clearbit", false},
		{"E_OPENAI_RATE_LIMIT", "openai", true}, {"E_CSV_PARSE", "", false}, {"E_INTERNAL", "", true},
	}
)

func pick[T any](r *rand.Rand, s []T) T {
	// min of two uniforms skews towards the first values.
	return s[min(r.IntN(len(s)), r.IntN(len(s)))]
}

// genEvents writes about benchEvents events spread evenly over benchDays,
// job after job, as a node's recorder would: per job a job_started, one
// connection and 0–2 reconnects, each with heartbeats (sampled 1 in 10 for
// a third of the connections) and a disconnected summary, sometimes a
// failed connection attempt, a connection error, an exposure, and the job's
// end (8 % fail with an error event). About 10 events per job.
func genEvents(ctx context.Context, store jobcast.TelemetryStore) (int, error) {
	r := rand.New(rand.NewPCG(1, 2))
	const perJob = 10.2 // measured mean events per job of this generator
	jobs := int(math.Round(benchEvents / perJob))
	step := benchDays * 24 * time.Hour / time.Duration(jobs)
	batch := make([]jobcast.Event, 0, 120_000)
	total := 0
	flush := func() error {
		if err := store.Write(ctx, batch); err != nil {
			return err
		}
		total += len(batch)
		batch = batch[:0]
		return nil
	}
	for j := range jobs {
		ts := benchStart.Add(time.Duration(j) * step)
		id := fmt.Sprintf("job_%016x", r.Uint64())
		pipeline := pick(r, benchPipelines)
		device := fmt.Sprintf("Device-%02d", min(r.IntN(50), r.IntN(50)))
		base := jobcast.Event{Node: "node-1", JobID: id, Pipeline: pipeline,
			AppVersion: pick(r, benchApps), OSVersion: pick(r, benchOSes),
			NetworkType: pick(r, benchNetworks), DeviceModel: device, SampleInterval: 1}
		jobEv := func(at time.Time, name string) jobcast.Event {
			return jobcast.Event{TS: at, Event: name, Node: "node-1", JobID: id, Pipeline: pipeline, SampleInterval: 1}
		}
		batch = append(batch, jobEv(ts, jobcast.EventJobStarted))
		at := ts.Add(time.Duration(r.IntN(2000)) * time.Millisecond)
		if r.IntN(10) == 0 {
			e := base
			e.TS, e.Event = at, jobcast.EventConnectFailed
			e.Reason, e.ErrorCode, e.Retryable = jobcast.ReasonTokenExpired, "E_TOKEN_EXPIRED", true
			if r.IntN(3) == 0 {
				e.Reason, e.ErrorCode, e.Retryable = jobcast.ReasonRateLimited, "E_RATE_LIMITED", true
			}
			batch = append(batch, e)
			at = at.Add(time.Second)
		}
		if r.IntN(2) == 0 {
			e := base
			e.TS, e.Event = at, jobcast.EventExposure
			e.ExperimentID, e.Param, e.Value = "heartbeat-cellular-v1", "heartbeat_interval_ms", "30000"
			e.Variant = "control"
			if r.IntN(2) == 0 {
				e.Variant, e.Value = "treatment", "45000"
			}
			batch = append(batch, e)
		}
		conns := 1
		if x := r.IntN(10); x >= 9 {
			conns = 3
		} else if x >= 6 {
			conns = 2
		}
		sampled := r.IntN(3) == 0
		for c := range conns {
			e := base
			e.TS, e.ConnID, e.Event = at, fmt.Sprintf("c_%016x", r.Uint64()), jobcast.EventConnected
			if c > 0 {
				e.Event, e.ReconnectCount = jobcast.EventReconnected, int64(c)
			}
			batch = append(batch, e)
			hbs := 1 + r.IntN(5) // about 3 rows per connection
			for range hbs {
				at = at.Add(30 * time.Second)
				h := e
				h.TS, h.Event = at, jobcast.EventHeartbeat
				h.RTTMs = math.Round(math.Exp(4+0.8*r.NormFloat64())*1000) / 1000 // µs precision, median ~55 ms
				if sampled {
					h.SampleInterval = 10
				}
				batch = append(batch, h)
			}
			if r.IntN(50) == 0 {
				x := e
				x.TS, x.Event, x.ErrorCode, x.Reason = at.Add(time.Second), jobcast.EventError, "E_PROTOCOL", "unknown_type"
				batch = append(batch, x)
			}
			dur := time.Duration(hbs)*30*time.Second + time.Duration(r.IntN(30_000))*time.Millisecond
			d := e
			d.TS, d.Event, d.DurationMs = e.TS.Add(dur), jobcast.EventDisconnected, dur.Milliseconds()
			d.ProgressSent = int64(5 + r.IntN(100))
			d.ThrottledCount = int64(r.IntN(60))
			d.MessagesSent = d.ProgressSent + 2 + int64(hbs)
			d.BytesSent = d.MessagesSent * int64(150+r.IntN(200))
			d.CloseCode = 1000
			if c < conns-1 {
				d.CloseCode, d.Reason = 4008, "heartbeat_timeout"
			}
			batch = append(batch, d)
			at = d.TS.Add(time.Duration(1+r.IntN(5)) * time.Second)
		}
		if r.IntN(100) < 8 {
			be := pick(r, benchErrors)
			e := jobEv(at, jobcast.EventError)
			e.ErrorCode, e.Provider, e.Retryable = be.code, be.provider, be.retryable
			f := e
			f.Event = jobcast.EventJobFailed
			batch = append(batch, e, f)
		} else {
			batch = append(batch, jobEv(at, jobcast.EventJobCompleted))
		}
		if len(batch) >= 100_000 {
			if err := flush(); err != nil {
				return total, err
			}
		}
	}
	return total, flush()
}
