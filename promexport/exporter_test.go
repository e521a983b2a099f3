package promexport_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/internal/jobcasttest"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/promexport"
	"github.com/jobcast/jobcast/protocol"
	"github.com/jobcast/jobcast/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func scrape(t *testing.T, e *promexport.Exporter) string {
	t.Helper()
	rec := httptest.NewRecorder()
	e.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return string(body)
}

func TestExporterCountsAndForwards(t *testing.T) {
	t.Parallel()
	next := &jobcasttest.Events{}
	e := promexport.New(next)
	evs := []jobcast.Event{
		{Event: jobcast.EventConnected, NetworkType: "wifi"},
		{Event: jobcast.EventConnected, NetworkType: "cellular"},
		{Event: jobcast.EventReconnected, NetworkType: "cellular"},
		{Event: jobcast.EventConnectFailed, NetworkType: "satellite", Reason: jobcast.ReasonTokenExpired},
		{Event: jobcast.EventDisconnected, NetworkType: "wifi", CloseCode: 1000},
		{Event: jobcast.EventError, ErrorCode: "E_GEMINI_TIMEOUT"},
		{Event: jobcast.EventError, ErrorCode: "E_GEMINI_TIMEOUT"},
		{Event: jobcast.EventJobCompleted, Pipeline: "csv_import"},
		{Event: jobcast.EventHeartbeat, NetworkType: "wifi", RTTMs: 30, SampleInterval: 10},
		{Event: jobcast.EventHeartbeat, NetworkType: "wifi", RTTMs: 500},
	}
	for _, ev := range evs {
		e.Record(ev)
	}
	if got := len(next.All()); got != len(evs) {
		t.Fatalf("forwarded %d events, want %d", got, len(evs))
	}
	out := scrape(t, e)
	for _, want := range []string{
		`jobcast_connection_events_total{event="connected",network_type="wifi"} 1`,
		`jobcast_connection_events_total{event="connected",network_type="cellular"} 1`,
		`jobcast_connection_events_total{event="reconnected",network_type="cellular"} 1`,
		`jobcast_connection_events_total{event="connect_failed",network_type="unknown"} 1`,
		`jobcast_connect_failures_total{reason="token_expired"} 1`,
		`jobcast_disconnects_total{close_code="1000"} 1`,
		`jobcast_errors_total{code="E_GEMINI_TIMEOUT"} 2`,
		`jobcast_jobs_total{event="job_completed",pipeline="csv_import"} 1`,
		// The sampled heartbeat counts ten times.
		`jobcast_heartbeat_rtt_seconds_count{network_type="wifi"} 11`,
		`jobcast_heartbeat_rtt_seconds_bucket{network_type="wifi",le="0.05"} 10`,
		"go_goroutines",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

func TestExporterCapsLabelValues(t *testing.T) {
	t.Parallel()
	e := promexport.New(nil)
	for i := 0; i < 100; i++ {
		e.Record(jobcast.Event{Event: jobcast.EventError, ErrorCode: fmt.Sprintf("E_CODE_%03d", i)})
	}
	out := scrape(t, e)
	if n := strings.Count(out, "jobcast_errors_total{code="); n != 65 {
		t.Errorf("%d error code series, want 64 and other", n)
	}
	if !strings.Contains(out, `jobcast_errors_total{code="other"} 36`) {
		t.Error("codes past the cap are not counted as other")
	}
}

// Against a live server, the hub's gauges and counters are exported.
func TestExporterReadsHub(t *testing.T) {
	t.Parallel()
	srv := jobcasttest.Start(t, jobcasttest.Options{})
	e := promexport.New(nil)
	e.WatchHub(srv.Hub)
	out := scrape(t, e)
	for _, want := range []string{"jobcast_connections 0", "jobcast_frames_sent_total 0", "jobcast_bytes_sent_total 0", "jobcast_progress_throttled_total 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

// Telemetry drops are exported, so a full buffer is visible.
func TestExporterReadsRecorder(t *testing.T) {
	t.Parallel()
	rec := telemetry.New(nil, telemetry.Options{BufferSize: 2})
	e := promexport.New(rec)
	e.WatchRecorder(rec)
	for i := 0; i < 5; i++ {
		e.Record(jobcast.Event{Event: jobcast.EventHeartbeat})
	}
	out := scrape(t, e)
	for _, want := range []string{
		`jobcast_telemetry_events_total{outcome="recorded"} 2`,
		`jobcast_telemetry_events_total{outcome="dropped"} 3`,
		`jobcast_telemetry_buffered 2`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

// The job store spool's queue is exported, so a full disk's backlog is
// visible: here one write held while the store refuses writes.
func TestExporterReadsSpool(t *testing.T) {
	t.Parallel()
	store := &refusingStore{JobStore: inmem.NewJobStore()}
	spool := jobs.NewSpool(store, jobs.SpoolOptions{Clock: clocktest.New(time.Unix(0, 0))})
	t.Cleanup(func() { spool.Close() })
	job := &jobcast.Job{JobState: protocol.JobState{JobID: "j", Pipeline: "p", Status: protocol.StatusPending}}
	if err := spool.CreateJob(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	e := promexport.New(nil)
	e.WatchSpool(spool)
	out := scrape(t, e)
	for _, want := range []string{"jobcast_job_writes_queued 1", "jobcast_job_writes_flushed_late_total 0",
		"jobcast_job_writes_refused_total 0", "jobcast_job_writes_dropped_total 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

// refusingStore refuses every write as a full disk does.
type refusingStore struct{ jobcast.JobStore }

func (refusingStore) CreateJob(context.Context, *jobcast.Job) error {
	return jobcast.Errorf(protocol.ErrUnavailable, "disk full")
}
