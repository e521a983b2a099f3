package metrics_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/duckdb"
	"github.com/jobcast/jobcast/metrics"
)

// rollupDay0 is the first day of rollupEvents.
var rollupDay0 = time.Date(2026, 2, 2, 0, 0, 0, 0, time.UTC)

// rollupEvents is a fixed, seeded event set over four days that exercises
// what rollups aggregate: jobs spanning midnight, several watchers of one
// job on different networks (so a job counts in several groups), job events
// without client context, anonymous connections, sampled heartbeats with
// repeated RTT values, token-expired and other failed connects, errors,
// disconnect counters, and events written out of time order within a batch.
func rollupEvents() []jobcast.Event {
	r := rand.New(rand.NewPCG(7, 11))
	pipelines := []string{"csv_import", "ai_scan", "pdf_export"}
	apps := []string{"2.0", "2.1", "1.9"}
	oses := []string{"iOS 18", "Android 15"}
	nets := []string{"wifi", "cellular", "ethernet"}
	devices := []string{"Pixel 8", "iPhone15,2"}
	var evs []jobcast.Event
	for j := range 80 {
		job := fmt.Sprintf("job-%03d", j)
		pipeline := pipelines[r.IntN(len(pipelines))]
		// Spread over four days; every fifth job starts just before midnight.
		start := rollupDay0.Add(time.Duration(j%4)*24*time.Hour + time.Duration(r.IntN(20*3600))*time.Second)
		if j%5 == 0 {
			start = rollupDay0.Add(time.Duration(j%4)*24*time.Hour - 10*time.Minute)
			if j%4 == 0 {
				start = start.Add(24 * time.Hour)
			}
		}
		jobEv := func(at time.Time, name string) jobcast.Event {
			return jobcast.Event{TS: at, Event: name, Node: "n1", JobID: job, Pipeline: pipeline, SampleInterval: 1}
		}
		evs = append(evs, jobEv(start, jobcast.EventJobStarted))
		at := start
		for w := range 1 + r.IntN(3) { // watchers
			base := jobcast.Event{Node: "n1", JobID: job, Pipeline: pipeline, ConnID: fmt.Sprintf("c-%d-%d", j, w),
				AppVersion: apps[r.IntN(len(apps))], OSVersion: oses[r.IntN(len(oses))],
				NetworkType: nets[r.IntN(len(nets))], DeviceModel: devices[r.IntN(len(devices))], SampleInterval: 1}
			if r.IntN(4) == 0 {
				e := base
				e.TS, e.Event, e.Reason = at, jobcast.EventConnectFailed, jobcast.ReasonTokenExpired
				if r.IntN(2) == 0 {
					e.Reason = jobcast.ReasonRateLimited
				}
				evs = append(evs, e)
			}
			sample := int64(1)
			if r.IntN(3) == 0 {
				sample = 10
			}
			for c := range 1 + r.IntN(3) { // connections
				at = at.Add(time.Duration(1+r.IntN(300)) * time.Second)
				e := base
				e.TS, e.Event = at, jobcast.EventConnected
				if c > 0 {
					e.Event, e.ReconnectCount = jobcast.EventReconnected, int64(c)
				}
				evs = append(evs, e)
				for range r.IntN(6) {
					at = at.Add(time.Duration(5+r.IntN(600)) * time.Second)
					h := base
					h.TS, h.Event, h.SampleInterval = at, jobcast.EventHeartbeat, sample
					h.RTTMs = float64(10+r.IntN(200)) + float64(r.IntN(4))*0.25 // repeats
					if r.IntN(5) == 0 {
						h.RTTMs = math.Round(r.ExpFloat64()*80_000) / 1000 // µs precision
					}
					evs = append(evs, h)
				}
				if r.IntN(6) == 0 {
					x := base
					x.TS, x.Event, x.ErrorCode = at, jobcast.EventError, "E_PROTOCOL"
					evs = append(evs, x)
				}
				d := base
				at = at.Add(time.Duration(1+r.IntN(60)) * time.Second)
				d.TS, d.Event, d.DurationMs = at, jobcast.EventDisconnected, int64(1000+r.IntN(900_000))
				d.ProgressSent, d.ThrottledCount = int64(r.IntN(80)), int64(r.IntN(30))
				d.MessagesSent = d.ProgressSent + int64(r.IntN(5))
				d.BytesSent = d.MessagesSent * int64(100+r.IntN(200))
				d.CloseCode = 1000
				evs = append(evs, d)
			}
		}
		end := jobEv(at.Add(time.Minute), jobcast.EventJobCompleted)
		if r.IntN(5) == 0 {
			e := jobEv(end.TS, jobcast.EventError)
			e.ErrorCode, e.Provider, e.Retryable = "E_GEMINI_TIMEOUT", "gemini", true
			evs = append(evs, e)
			end.Event = jobcast.EventJobFailed
		}
		evs = append(evs, end)
	}
	for i := range 12 { // connections without a job
		e := jobcast.Event{TS: rollupDay0.Add(time.Duration(i) * 7 * time.Hour), Event: jobcast.EventConnected,
			Node: "n1", AppVersion: "2.0", OSVersion: "iOS 18", NetworkType: "wifi", DeviceModel: "Pixel 8", SampleInterval: 1}
		evs = append(evs, e)
		e.Event, e.RTTMs, e.SampleInterval = jobcast.EventHeartbeat, 42.5, 1
		evs = append(evs, e)
	}
	return evs
}

// rollupShapes are the query shapes compared: whole-day buckets by zero, one
// and two dimensions (the two rollup paths), a filter, two-day buckets, a
// window cut inside days (its first and last buckets from events), and
// shapes rollups cannot answer (hourly buckets, device_model, no bucket).
func rollupShapes() []metrics.Query {
	from, to := rollupDay0, rollupDay0.Add(4*24*time.Hour)
	d := 24 * time.Hour
	return []metrics.Query{
		{From: from, To: to, Bucket: d},
		{From: from, To: to, Bucket: d, GroupBy: []string{"network_type"}},
		{From: from, To: to, Bucket: d, GroupBy: []string{"app_version"}, Filters: map[string]string{"app_version": "2.0"}},
		{From: from, To: to, Bucket: d, GroupBy: []string{"network_type"}, Filters: map[string]string{"pipeline": "csv_import"}},
		{From: from, To: to, Bucket: d, GroupBy: []string{"os_version", "network_type"}},
		{From: from, To: to, Bucket: d, Filters: map[string]string{"network_type": "cellular", "os_version": "iOS 18"}},
		{From: from, To: to, Bucket: 2 * d, GroupBy: []string{"pipeline"}},
		{From: from.Add(5 * time.Hour), To: to.Add(-7 * time.Hour), Bucket: d, GroupBy: []string{"network_type"}},
		{From: from.Add(-d), To: to.Add(d), Bucket: d},
		{From: from, To: to, Bucket: 6 * time.Hour, GroupBy: []string{"network_type"}},
		{From: from, To: to, Bucket: d, GroupBy: []string{"device_model"}},
		{From: from, To: to, GroupBy: []string{"network_type"}},
		// 12…: one number per group over windows of whole rolled-up days
		// and partial or unrolled days at the edges, combined in one
		// statement, by each dimension, with filters.
		{From: from.Add(5 * time.Hour), To: to.Add(-7 * time.Hour)},
		{From: from.Add(5 * time.Hour), To: to.Add(-7 * time.Hour), GroupBy: []string{"pipeline"}},
		{From: from.Add(5 * time.Hour), To: to.Add(-7 * time.Hour), GroupBy: []string{"app_version"}, Filters: map[string]string{"network_type": "wifi"}},
		{From: from.Add(5 * time.Hour), To: to.Add(-7 * time.Hour), GroupBy: []string{"os_version"}},
		{From: from.Add(5 * time.Hour), To: to.Add(-7 * time.Hour), GroupBy: []string{"network_type"}, Filters: map[string]string{"network_type": "cellular"}},
		{From: from.Add(5 * time.Hour), To: to.Add(-7 * time.Hour), GroupBy: []string{"os_version", "network_type"}},
		{From: from.Add(5 * time.Hour), To: to.Add(-7 * time.Hour), Filters: map[string]string{"os_version": "iOS 18", "pipeline": "ai_scan"}},
		{From: from.Add(-d + 3*time.Hour), To: to.Add(d - 2*time.Hour), GroupBy: []string{"network_type"}},
		{From: from, To: to},
		{From: from.Add(5 * time.Hour), To: to.Add(-7 * time.Hour), Bucket: 2 * d, GroupBy: []string{"network_type"}},
		{From: from.Add(-d + 3*time.Hour), To: to.Add(d - 2*time.Hour), Bucket: 3 * d},
		{From: from.Add(5 * time.Hour), To: to.Add(-7 * time.Hour), GroupBy: []string{"device_model"}},
		{From: from.Add(d + time.Hour), To: from.Add(d + 5*time.Hour), GroupBy: []string{"pipeline"}},
	}
}

// mixedShapes are the shapes of rollupShapes compared again after each
// change to the rollups (every shape is compared once they are built):
// daily buckets by one and two dimensions and cut at both ends, and single
// numbers and two-day buckets mixing rollups and events in one statement
// (overall, by a dimension filtered by another, by two dimensions, with
// days without events at both ends).
var mixedShapes = []int{1, 4, 7, 12, 14, 17, 19, 21}

// openPair opens two stores holding the same events: raw never builds
// rollups, rolled does whenever the test says.
func openPair(t *testing.T) (raw, rolled *duckdb.Store) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	var err error
	if raw, err = duckdb.Open(ctx, filepath.Join(dir, "raw.duckdb"), duckdb.Options{Threads: 1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	if rolled, err = duckdb.Open(ctx, filepath.Join(dir, "rolled.duckdb"), duckdb.Options{Threads: 1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rolled.Close() })
	return raw, rolled
}

func writeBoth(t *testing.T, a, b jobcast.TelemetryStore, evs []jobcast.Event) {
	t.Helper()
	for _, s := range []jobcast.TelemetryStore{a, b} {
		if err := s.Write(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
	}
}

// sameAnswers checks that every metric in every shape (or in the shapes
// listed by index) has the same points
// from both stores: equal times, groups and weights, and values equal up to
// the rounding of summing doubles in another order.
func sameAnswers(t *testing.T, stage string, raw, rolled jobcast.TelemetryStore, shapes ...int) {
	t.Helper()
	ctx := context.Background()
	lr, lb := metrics.New(raw), metrics.New(rolled)
	for si, shape := range rollupShapes() {
		if len(shapes) > 0 && !slices.Contains(shapes, si) {
			continue
		}
		for _, def := range metrics.Definitions() {
			q := shape
			q.Metric = def.Name
			want, err := lr.Compute(ctx, q)
			if err != nil {
				t.Fatalf("%s: shape %d %s raw: %v", stage, si, def.Name, err)
			}
			got, err := lb.Compute(ctx, q)
			if err != nil {
				t.Fatalf("%s: shape %d %s rolled: %v", stage, si, def.Name, err)
			}
			if len(got.Points) != len(want.Points) {
				t.Errorf("%s: shape %d %s: %d points, want %d\ngot  %v\nwant %v", stage, si, def.Name,
					len(got.Points), len(want.Points), got.Points, want.Points)
				continue
			}
			for i, w := range want.Points {
				g := got.Points[i]
				if !g.Time.Equal(w.Time) || fmt.Sprint(g.Group) != fmt.Sprint(w.Group) ||
					!sameFloat(g.Value, w.Value) || !sameFloat(g.Weight, w.Weight) {
					t.Errorf("%s: shape %d %s point %d: got %+v, want %+v", stage, si, def.Name, i, g, w)
				}
			}
		}
	}
}

func sameFloat(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-12*math.Max(math.Abs(a), math.Abs(b))
}

func rollupDays(t *testing.T, s jobcast.TelemetryStore) string {
	t.Helper()
	rows, err := s.Query(context.Background(), "SELECT strftime(day, '%d') FROM rollup_days ORDER BY day")
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(rows.Rows)
}

// Rollups change no answer: before they are built, once built (and read:
// the events they stand for are then removed behind the store's back), after
// late and out-of-order events drop a day, after it is built again, and
// after retention cuts a day.
func TestRollupsGiveRawAnswers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	raw, rolled := openPair(t)
	evs := rollupEvents()
	// Out of time order within and across batches, as several nodes'
	// recorders write.
	rand.New(rand.NewPCG(3, 5)).Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
	half := len(evs) / 2
	writeBoth(t, raw, rolled, evs[:half])
	writeBoth(t, raw, rolled, evs[half:])

	// Days that ended at or before the 4th's midnight + 1h: the 2nd to the
	// 4th (the 5th is still open). The 1st has no events.
	n, err := rolled.Rollup(ctx, rollupDay0.Add(3*24*time.Hour+time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 || rollupDays(t, rolled) != "[[02] [03] [04]]" {
		t.Fatalf("built %d days %s, want 3: [[02] [03] [04]]", n, rollupDays(t, rolled))
	}
	if n, err := rolled.Rollup(ctx, rollupDay0.Add(3*24*time.Hour+time.Hour)); err != nil || n != 0 {
		t.Fatalf("Rollup again = %d, %v; want 0 days", n, err)
	}
	sameAnswers(t, "rolled up", raw, rolled)

	// Events of the 3rd that arrive late, out of order: the day's rollups
	// are dropped in the same transaction, and answers still match.
	late := []jobcast.Event{
		{TS: rollupDay0.Add(24*time.Hour + 5*time.Hour), Event: jobcast.EventHeartbeat, Node: "n2", JobID: "job-late",
			Pipeline: "ai_scan", AppVersion: "2.0", OSVersion: "iOS 18", NetworkType: "wifi", RTTMs: 1234.5, SampleInterval: 10},
		{TS: rollupDay0.Add(4*24*time.Hour + time.Minute), Event: jobcast.EventConnected, Node: "n2", JobID: "job-late",
			Pipeline: "ai_scan", AppVersion: "2.0", OSVersion: "iOS 18", NetworkType: "wifi", SampleInterval: 1},
		{TS: rollupDay0.Add(24*time.Hour + time.Hour), Event: jobcast.EventError, Node: "n2", JobID: "job-late",
			Pipeline: "ai_scan", ErrorCode: "E_INTERNAL", SampleInterval: 1},
	}
	writeBoth(t, raw, rolled, late)
	if got := rollupDays(t, rolled); got != "[[02] [04]]" {
		t.Fatalf("after late events rollup days %s, want [[02] [04]]", got)
	}
	sameAnswers(t, "late events", raw, rolled, mixedShapes...)
	if n, err := rolled.Rollup(ctx, rollupDay0.Add(3*24*time.Hour+time.Hour)); err != nil || n != 1 {
		t.Fatalf("Rollup after late events = %d, %v; want 1 day", n, err)
	}
	sameAnswers(t, "rebuilt", raw, rolled, mixedShapes...)

	// Retention: the 2nd goes entirely, the 3rd in part; its rollups go
	// with the events.
	cut := rollupDay0.Add(24*time.Hour + 12*time.Hour)
	for _, s := range []jobcast.TelemetryStore{raw, rolled} {
		if _, err := s.DeleteBefore(ctx, cut); err != nil {
			t.Fatal(err)
		}
	}
	if got := rollupDays(t, rolled); got != "[[04]]" {
		t.Fatalf("after retention rollup days %s, want [[04]]", got)
	}
	sameAnswers(t, "retention", raw, rolled, mixedShapes...)
	if n, err := rolled.Rollup(ctx, rollupDay0.Add(3*24*time.Hour+time.Hour)); err != nil || n != 1 {
		t.Fatalf("Rollup after retention = %d, %v; want 1 day (the cut 3rd)", n, err)
	}
	sameAnswers(t, "rebuilt after retention", raw, rolled, mixedShapes...)

	// The rollups are what is read: remove the 4th's events behind the
	// store's back and its whole-day buckets keep their answer, and so do
	// windows of the whole 4th and hours of the 3rd (read from events),
	// one number per group.
	lb := metrics.New(rolled)
	fourth := rollupDay0.Add(2 * 24 * time.Hour)
	var qs []metrics.Query
	for _, def := range metrics.Definitions() {
		qs = append(qs,
			metrics.Query{Metric: def.Name, From: fourth, To: fourth.Add(24 * time.Hour), Bucket: 24 * time.Hour, GroupBy: []string{"network_type"}},
			metrics.Query{Metric: def.Name, From: fourth.Add(-3 * time.Hour), To: fourth.Add(24 * time.Hour), GroupBy: []string{"network_type"}},
			metrics.Query{Metric: def.Name, From: fourth.Add(-3 * time.Hour), To: fourth.Add(24 * time.Hour)})
	}
	before := make([]*metrics.Result, len(qs))
	for i, q := range qs {
		if before[i], err = lb.Compute(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rolled.Query(ctx, "DELETE FROM events WHERE ts >= make_timestamp(?) AND ts < make_timestamp(?)",
		fourth.UnixMicro(), fourth.Add(24*time.Hour).UnixMicro()); err != nil {
		t.Fatal(err)
	}
	for i, q := range qs {
		after, err := lb.Compute(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(before[i].Points) == 0 || fmt.Sprint(after.Points) != fmt.Sprint(before[i].Points) {
			t.Errorf("%s from %s, bucket %s, with the 4th's events gone: %v, want the rollups' %v",
				q.Metric, q.From.Format(time.RFC3339), q.Bucket, after.Points, before[i].Points)
		}
	}
}
