package alerting_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/alerting"
	"github.com/jobcast/jobcast/demo"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/internal/jobcasttest"
)

// runDemo runs the demo's simulated producers and clients against srv for
// d, with an error burst while burst is set, and returns the telemetry
// events the server recorded meanwhile.
func runDemo(t *testing.T, srv *jobcasttest.Server, rec *jobcasttest.Events, d time.Duration, burst bool) []jobcast.Event {
	t.Helper()
	before := len(rec.All())
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	var on atomic.Bool
	on.Store(burst)
	if _, err := demo.Run(ctx, demo.Options{
		BaseURL: srv.URL, APIKey: jobcasttest.APIKey, JobsPerPipeline: 2, Speed: 10,
		StatusEvery: -1, Seed: 7, Clean: true, ErrorBurst: on.Load,
	}); err != nil {
		t.Fatal(err)
	}
	// Stopping the demo cancels the jobs still running, each with an
	// E_CANCELLED error: an artifact of these short runs, not traffic.
	var out []jobcast.Event
	for _, e := range rec.All()[before:] {
		if e.ErrorCode != "E_CANCELLED" {
			out = append(out, e)
		}
	}
	return out
}

// TestDemoErrorBurstFiresAndResolves is the walk-through of docs/alerts.md
// in a test: the demo's injected error burst makes the default error-rate
// rule fire and page a receiver; clean traffic after it, once the burst
// leaves the 10-minute window, resolves it.
func TestDemoErrorBurstFiresAndResolves(t *testing.T) {
	t.Parallel()
	rec := &jobcasttest.Events{}
	srv := jobcasttest.Start(t, jobcasttest.Options{Recorder: rec})
	slack := newRecorder(t, 200, false)

	burst := runDemo(t, srv, rec, 2*time.Second, true)
	errs := 0
	for _, e := range burst {
		if e.Event == jobcast.EventError {
			errs++
		}
	}
	if errs == 0 {
		t.Fatalf("the injected burst recorded no error events (%d events)", len(burst))
	}
	clean := runDemo(t, srv, rec, time.Second, false)

	h := newHarness(t, alerting.Config{DashboardURL: dash, Receivers: []alerting.Receiver{{Name: "slack", Type: alerting.TypeSlack, URL: slack.srv.URL}},
		Routes: []alerting.Route{{Receiver: "slack", Matchers: []string{"alertname=error_rate_high"}}}})
	h.write(append(burst, clean...)...)
	// The alerting clock starts now: the demo's events are in its window.
	h.clock = clocktest.New(time.Now())
	h.close()
	h.opt.Clock = h.clock
	h.open()
	h.eval(0)
	if got := h.states(alerting.RuleErrorRate); got["{}"] != jobcast.AlertFiring {
		t.Fatalf("error_rate_high after the burst: %v (%d error events in %d)", got, errs, len(burst))
	}
	var msg struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(slack.wait(t, 0), &msg); err != nil || msg.Text[:len("[FIRING:1] error_rate_high")] != "[FIRING:1] error_rate_high" {
		t.Fatalf("slack got %s (%v)", slack.bodies[0], err)
	}

	// Eleven minutes on, clean traffic only: the same clean sessions, now.
	h.clock.Advance(11 * time.Minute)
	now := h.clock.Now()
	for i := range clean {
		clean[i].TS = now.Add(-time.Second)
		if clean[i].JobID != "" {
			clean[i].JobID += "-later"
		}
	}
	h.write(clean...)
	h.svc.Evaluate(t.Context())
	if got := h.states(alerting.RuleErrorRate); got["{}"] != jobcast.AlertResolved {
		t.Fatalf("error_rate_high after clean traffic: %v", got)
	}
	if err := json.Unmarshal(slack.wait(t, 1), &msg); err != nil || msg.Text[:len("[RESOLVED:1] error_rate_high")] != "[RESOLVED:1] error_rate_high" {
		t.Fatalf("slack got %s (%v)", slack.bodies[1], err)
	}
}
