package experiment_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/duckdb"
	"github.com/jobcast/jobcast/experiment"
	"github.com/jobcast/jobcast/internal/clocktest"
)

func openEvents(t *testing.T) *duckdb.Store {
	t.Helper()
	st, err := duckdb.Open(context.Background(), filepath.Join(t.TempDir(), "telemetry.duckdb"), duckdb.Options{Threads: 1, MemoryLimit: "256MB"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func metric(t *testing.T, r *experiment.Results, name string) experiment.MetricResult {
	t.Helper()
	for _, m := range r.Metrics {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no metric %s in %+v", name, r.Metrics)
	return experiment.MetricResult{}
}

// TestResultsSQL writes a known set of events and checks every per-arm
// estimate against its value by hand: the joins by unit id, events before
// a unit's exposure left out, other experiments' units left out.
func TestResultsSQL(t *testing.T) {
	t.Parallel()
	events := openEvents(t)
	svc, _ := newService(t, events)
	create(t, svc, `{"id":"hb","parameter":"heartbeat_interval_ms","control":30000,"variant":45000,"status":"running"}`)
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	var evs []jobcast.Event
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	// unit(job, arm, reconnects, connection durations (s), heartbeat RTTs,
	// progress sent, throttled, completed?)
	unit := func(job, arm string, recon int, durs []int, rtts []float64, progress, throttled int64, completed bool) {
		evs = append(evs, jobcast.Event{TS: at(-10), Event: jobcast.EventReconnected, JobID: job}) // before exposure: ignored
		evs = append(evs, jobcast.Event{TS: at(0), Event: jobcast.EventExposure, JobID: job, ExperimentID: "hb", Variant: arm,
			Param: jobcast.ParamHeartbeatInterval, Value: "30000"})
		for i := range recon {
			evs = append(evs, jobcast.Event{TS: at(1 + i), Event: jobcast.EventReconnected, JobID: job})
		}
		for i, d := range durs {
			e := jobcast.Event{TS: at(100 + i), Event: jobcast.EventDisconnected, JobID: job, DurationMs: int64(d) * 1000}
			if i == 0 {
				e.ProgressSent, e.ThrottledCount = progress, throttled
			}
			evs = append(evs, e)
		}
		for i, r := range rtts {
			evs = append(evs, jobcast.Event{TS: at(10 + i), Event: jobcast.EventHeartbeat, JobID: job, RTTMs: r, SampleInterval: 1})
		}
		name := jobcast.EventJobFailed
		if completed {
			name = jobcast.EventJobCompleted
		}
		evs = append(evs, jobcast.Event{TS: at(200), Event: name, JobID: job})
	}
	unit("c1", "control", 0, []int{60}, []float64{10, 20, 30}, 10, 0, true)
	unit("c2", "control", 1, []int{30, 30}, []float64{40}, 10, 10, true)
	unit("c3", "control", 2, []int{120}, []float64{50, 60}, 0, 0, false)
	unit("v1", "variant", 3, []int{20, 20, 20, 20}, []float64{100, 200}, 5, 5, true)
	unit("v2", "variant", 5, []int{60}, []float64{300}, 0, 0, true)
	// c1 exposed again in the other arm (a broken assignment): still
	// counted in control, and reported.
	evs = append(evs, jobcast.Event{TS: at(50), Event: jobcast.EventExposure, JobID: "c1", ExperimentID: "hb", Variant: "variant"})
	// Another experiment's unit, and a job never exposed.
	evs = append(evs, jobcast.Event{TS: at(0), Event: jobcast.EventExposure, JobID: "o1", ExperimentID: "other", Variant: "variant"},
		jobcast.Event{TS: at(5), Event: jobcast.EventReconnected, JobID: "o1"},
		jobcast.Event{TS: at(5), Event: jobcast.EventReconnected, JobID: "x1"})
	if err := events.Write(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	var res experiment.Results
	if code := apiCall(t, svc.Handler(), http.MethodGet, "/v1/experiments/hb/results", "", &res); code != http.StatusOK {
		t.Fatalf("results: %d", code)
	}
	if res.Arms[0].Units != 3 || res.Arms[1].Units != 2 {
		t.Fatalf("units %+v", res.Arms)
	}
	want := map[string][2]float64{
		experiment.MetricReconnectsPerSession:  {1, 4},
		experiment.MetricAvgConnectionDuration: {240000.0 / 4, 140000.0 / 5},
		experiment.MetricJobCompletionRate:     {2.0 / 3, 1},
		experiment.MetricRTTP50:                {30, 200},                   // discrete medians of 10..60 and 100, 200, 300
		experiment.MetricHeartbeatsPerConnMin:  {6 / 4.0, 3 / (140.0 / 60)}, // heartbeats / connection minutes
		experiment.MetricThrottleRate:          {10.0 / 30, 5.0 / 10},
	}
	for name, w := range want {
		m := metric(t, &res, name)
		for i := range 2 {
			if got := float64(m.Arms[i].Value); math.Abs(got-w[i]) > 1e-9 {
				t.Errorf("%s[%s] = %g, want %g", name, m.Arms[i].Name, got, w[i])
			}
		}
		if len(m.Comparisons) != 1 || m.Comparisons[0].Variant != "variant" || m.Comparisons[0].Significant {
			t.Errorf("%s comparisons %+v (no verdict below 1000 units)", name, m.Comparisons)
		}
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "1 units were exposed to more than one arm") {
		t.Errorf("warnings %q", res.Warnings)
	}
	if res.EnoughUnits || len(res.Warnings) == 0 {
		t.Errorf("a verdict with 3 and 2 units: %+v", res)
	}
	// NaN estimates encode as null, never break the JSON.
	if _, err := json.Marshal(&res); err != nil {
		t.Fatal(err)
	}
}

// TestAPI exercises the experiments API: create, read, list, conflicts,
// updates, frozen fields, errors.
func TestAPI(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t, nil)
	h := svc.Handler()
	e := create(t, svc, `{"id":"heartbeat-cellular-v1","parameter":"heartbeat_interval_ms","control":30000,"variant":45000,
		"coverage":1.0,"split":0.5,"segment":{"networkType":"cellular"},"status":"running"}`)
	if e.Status != "running" || e.StartedAt.IsZero() || *e.Control != 30000 || *e.Variant != 45000 || e.Split != 0.5 ||
		len(e.Segment.NetworkType) != 1 || e.Unit != "job" {
		t.Fatalf("created %+v", e)
	}
	tests := []struct {
		name, method, path, body string
		code                     int
	}{
		{"duplicate", http.MethodPost, "/v1/experiments", `{"id":"heartbeat-cellular-v1","parameter":"throttle_ms","control":1,"variant":2}`, http.StatusConflict},
		{"unknown field", http.MethodPost, "/v1/experiments", `{"id":"x","parameter":"throttle_ms","control":1,"variant":2,"colour":1}`, http.StatusBadRequest},
		{"out of bounds", http.MethodPost, "/v1/experiments", `{"id":"x","parameter":"heartbeat_interval_ms","control":30000,"variant":5}`, http.StatusBadRequest},
		{"second running on one parameter", http.MethodPost, "/v1/experiments", `{"id":"hb2","parameter":"heartbeat_interval_ms","control":30000,"variant":20000,"status":"running"}`, http.StatusBadRequest},
		{"draft on the same parameter is fine", http.MethodPost, "/v1/experiments", `{"id":"hb2","parameter":"heartbeat_interval_ms","control":30000,"variant":20000}`, http.StatusCreated},
		{"starting it conflicts", http.MethodPost, "/v1/experiments/hb2/start", "", http.StatusBadRequest},
		{"get", http.MethodGet, "/v1/experiments/heartbeat-cellular-v1", "", http.StatusOK},
		{"get unknown", http.MethodGet, "/v1/experiments/nope", "", http.StatusNotFound},
		{"update unknown", http.MethodPut, "/v1/experiments/nope", `{"coverage":0.5}`, http.StatusNotFound},
		{"ramp coverage", http.MethodPut, "/v1/experiments/heartbeat-cellular-v1", `{"coverage":0.5}`, http.StatusOK},
		{"change segment", http.MethodPut, "/v1/experiments/heartbeat-cellular-v1", `{"segment":{"networkType":["cellular","unknown"]}}`, http.StatusOK},
		{"frozen arms", http.MethodPut, "/v1/experiments/heartbeat-cellular-v1", `{"variant":60000}`, http.StatusBadRequest},
		{"frozen split", http.MethodPut, "/v1/experiments/heartbeat-cellular-v1", `{"split":0.2}`, http.StatusBadRequest},
		{"frozen parameter", http.MethodPut, "/v1/experiments/heartbeat-cellular-v1", `{"parameter":"throttle_ms"}`, http.StatusBadRequest},
		{"id in body differs", http.MethodPut, "/v1/experiments/heartbeat-cellular-v1", `{"id":"other"}`, http.StatusBadRequest},
		{"not an object", http.MethodPut, "/v1/experiments/heartbeat-cellular-v1", `[1]`, http.StatusBadRequest},
		{"draft arms may change", http.MethodPut, "/v1/experiments/hb2", `{"variants":[{"name":"a","value":30000},{"name":"b","value":15000},{"name":"c","value":60000}]}`, http.StatusOK},
		{"stop", http.MethodPost, "/v1/experiments/heartbeat-cellular-v1/stop", "", http.StatusOK},
		{"now hb2 may start", http.MethodPost, "/v1/experiments/hb2/start", "", http.StatusOK},
		{"results without telemetry", http.MethodGet, "/v1/experiments/hb2/results", "", http.StatusInternalServerError},
		{"unknown route", http.MethodDelete, "/v1/experiments/hb2", "", http.StatusNotFound},
	}
	for _, tc := range tests { // in order: each step builds on the last
		var body map[string]any
		code := apiCall(t, h, tc.method, tc.path, tc.body, &body)
		if code != tc.code {
			t.Fatalf("%s: %s %s → %d %v, want %d", tc.name, tc.method, tc.path, code, body, tc.code)
		}
		if code >= 400 {
			if msg, _ := body["error"].(map[string]any)["message"].(string); msg == "" || (code == 500 && msg != "internal error") {
				t.Errorf("%s: error body %v", tc.name, body)
			}
		}
	}
	var list struct {
		Experiments []jobcast.Experiment `json:"experiments"`
		Parameters  []jobcast.Parameter  `json:"parameters"`
	}
	apiCall(t, h, http.MethodGet, "/v1/experiments", "", &list)
	if len(list.Experiments) != 2 || list.Experiments[0].Status != "stopped" || list.Experiments[0].Coverage != 0.5 ||
		list.Experiments[1].Status != "running" || len(list.Experiments[1].Variants) != 3 || len(list.Parameters) != 2 {
		t.Fatalf("list %+v", list)
	}
}

// TestRetentionSweep: assignments older than the retention are deleted,
// newer ones kept.
func TestRetentionSweep(t *testing.T) {
	t.Parallel()
	svc, st := newService(t, nil)
	create(t, svc, `{"id":"hb","parameter":"heartbeat_interval_ms","control":30000,"variant":45000,"status":"running"}`)
	if _, err := svc.Assign(callCtx(t), jobcast.ExperimentUnit{UnitID: "job-1"}); err != nil {
		t.Fatal(err)
	}
	clock := clocktest.New(time.Now().Add(30 * time.Minute))
	experiment.NewRetention(st, clock, slog.New(slog.DiscardHandler), time.Hour).Sweep(callCtx(t))
	if n, _, _ := st.CountAssignments(callCtx(t), "hb"); n != 1 {
		t.Fatalf("a fresh assignment was deleted (%d left)", n)
	}
	clock.Advance(time.Hour)
	experiment.NewRetention(st, clock, slog.New(slog.DiscardHandler), time.Hour).Sweep(callCtx(t))
	if n, _, _ := st.CountAssignments(callCtx(t), "hb"); n != 0 {
		t.Fatalf("%d expired assignments kept", n)
	}
}
