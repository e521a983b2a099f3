package alerting_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/alerting"
	"github.com/jobcast/jobcast/duckdb"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/metrics"
	"github.com/jobcast/jobcast/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// t0 is the start of every test's manual clock.
var t0 = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

// harness is a real DuckDB telemetry store, a real SQLite alert store and
// a manual clock, with a Service on top.
type harness struct {
	t      *testing.T
	clock  *clocktest.Clock
	tel    *duckdb.Store
	dbPath string
	store  *sqlite.AlertStore
	svc    *alerting.Service
	opt    alerting.Options
}

func newHarness(t *testing.T, cfg alerting.Config, mod ...func(*alerting.Options)) *harness {
	t.Helper()
	dir := t.TempDir()
	tel, err := duckdb.Open(context.Background(), filepath.Join(dir, "telemetry.duckdb"), duckdb.Options{Threads: 1, MemoryLimit: "256MB"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Close() })
	h := &harness{t: t, clock: clocktest.New(t0), tel: tel, dbPath: filepath.Join(dir, "jobcast.db")}
	h.opt = alerting.Options{Config: cfg, Metrics: metrics.New(tel), Telemetry: tel, Clock: h.clock}
	for _, f := range mod {
		f(&h.opt)
	}
	h.open()
	return h
}

// open starts a Service on the alert store (again, after close: a restart).
func (h *harness) open() {
	h.t.Helper()
	store, err := sqlite.OpenAlertStore(context.Background(), h.dbPath)
	if err != nil {
		h.t.Fatal(err)
	}
	h.store = store
	opt := h.opt
	opt.Store = store
	svc, err := alerting.New(context.Background(), opt)
	if err != nil {
		store.Close()
		h.t.Fatal(err)
	}
	h.svc = svc
	h.t.Cleanup(h.close)
}

// close stops the Service and closes the alert store; idempotent.
func (h *harness) close() {
	if h.svc != nil {
		h.svc.Stop()
		h.svc = nil
	}
	if h.store != nil {
		h.store.Close()
		h.store = nil
	}
}

func (h *harness) write(events ...jobcast.Event) {
	h.t.Helper()
	if err := h.tel.Write(context.Background(), events); err != nil {
		h.t.Fatal(err)
	}
}

// eval advances the clock by d and evaluates.
func (h *harness) eval(d time.Duration) {
	h.t.Helper()
	h.clock.Advance(d)
	h.svc.Evaluate(context.Background())
}

// states maps each alert's identifying labels (without alertname and
// severity) to its state, for the rule named rule.
func (h *harness) states(rule string) map[string]string {
	snap, err := h.svc.Snapshot(context.Background(), 0)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]string{}
	for _, list := range [][]alerting.AlertStatus{snap.Firing, snap.Pending, snap.Silenced, snap.Resolved} {
		for _, a := range list {
			if a.Rule == rule {
				out[labelKey(a.Labels)] = a.State
			}
		}
	}
	return out
}

func labelKey(l map[string]string) string {
	var parts []string
	for k, v := range l {
		if k != "alertname" && k != "severity" {
			parts = append(parts, k+"="+v)
		}
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// sessions returns events for ok sessions without errors and bad sessions
// with an error, of pipeline, at ts. Job ids are unique per call.
var jobSeq struct {
	sync.Mutex
	n int
}

func sessions(ts time.Time, pipeline string, ok, bad int) []jobcast.Event {
	var out []jobcast.Event
	for i := 0; i < ok+bad; i++ {
		jobSeq.Lock()
		jobSeq.n++
		id := fmt.Sprintf("job-%d", jobSeq.n)
		jobSeq.Unlock()
		out = append(out, jobcast.Event{TS: ts, Event: jobcast.EventConnected, JobID: id, Pipeline: pipeline, ConnID: id + "-c"})
		if i >= ok {
			out = append(out, jobcast.Event{TS: ts, Event: jobcast.EventError, JobID: id, Pipeline: pipeline, ErrorCode: "E_GEMINI_TIMEOUT"})
		}
	}
	return out
}

// recorder is a fake HTTP receiver: it keeps every JSON body it gets and
// answers with status (200 by default).
type recorder struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	paths  []string
	got    chan struct{}
	status int
	hang   bool
}

func newRecorder(t *testing.T, status int, hang bool) *recorder {
	t.Helper()
	r := &recorder{got: make(chan struct{}, 100), status: status, hang: hang}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, body)
		r.paths = append(r.paths, req.URL.Path)
		r.mu.Unlock()
		r.got <- struct{}{}
		if r.hang {
			<-req.Context().Done()
			return
		}
		if r.status != 0 {
			w.WriteHeader(r.status)
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

// next waits for the i-th request (from 0) and returns its body.
func (r *recorder) wait(t *testing.T, i int) []byte {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		if len(r.bodies) > i {
			b := r.bodies[i]
			r.mu.Unlock()
			return b
		}
		r.mu.Unlock()
		select {
		case <-r.got:
		case <-deadline:
			t.Fatalf("receiver got %d requests, waited for request #%d", r.count(), i+1)
		}
	}
}

// jsonEqual fails unless got and want are the same JSON value.
func jsonEqual(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v: %s", what, err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad expectation: %v", what, err)
	}
	if !reflect.DeepEqual(g, w) {
		gi, _ := json.MarshalIndent(g, "", "  ")
		wi, _ := json.MarshalIndent(w, "", "  ")
		t.Fatalf("%s:\ngot  %s\nwant %s", what, gi, wi)
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// history waits until the history holds n records and returns them,
// oldest first.
func (h *harness) history(n int) []jobcast.NotificationRecord {
	h.t.Helper()
	var recs []jobcast.NotificationRecord
	waitFor(h.t, fmt.Sprintf("%d history records", n), func() bool {
		var err error
		recs, err = h.svc.History(context.Background(), 1000)
		if err != nil {
			h.t.Fatal(err)
		}
		return len(recs) >= n
	})
	for i, j := 0, len(recs)-1; i < j; i, j = i+1, j-1 {
		recs[i], recs[j] = recs[j], recs[i]
	}
	return recs
}
