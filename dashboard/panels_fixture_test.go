package dashboard_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/alerting"
	"github.com/jobcast/jobcast/experiment"
	"github.com/jobcast/jobcast/metrics"
	"github.com/jobcast/jobcast/sqlite"
)

// Names of the panel fixture: a rule that fires per pipeline on the
// fixture's errors (ai_scan 50 %, csv_import 1 in 12), one that stays
// pending for its `for`, a silence on csv_import, and an experiment on the
// fixture's 24 jobs.
const (
	ruleErrors   = "errors_by_pipeline"
	rulePending  = "rtt_above_50ms"
	fixtureExpID = "hb-cellular"
)

// panelServices returns real alerting and experiment services over the
// fixture's telemetry store: the rules evaluated once at clock's now (a
// webhook receiver answers 200, so the history gets a row), and exposures
// of the 24 fixture jobs, alternately in each arm, written to store.
func panelServices(t *testing.T, store jobcast.TelemetryStore, clock jobcast.Clock) (*alerting.Service, *experiment.Service) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	t.Cleanup(hook.Close)

	astore, err := sqlite.OpenAlertStore(ctx, filepath.Join(dir, "alerts.db"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := alerting.Config{
		DisableDefaults: true,
		Rules: []alerting.Rule{
			{Name: ruleErrors, Metric: metrics.ErrorRate, Window: alerting.Duration(time.Hour), Op: ">", Threshold: 0.05,
				Severity: "critical", GroupBy: []string{"pipeline"},
				Annotations: map[string]string{"summary": "Error rate {{ pct .Value }} in {{ .Labels.pipeline }}"}},
			{Name: rulePending, Metric: metrics.RTTAvgMs, Window: alerting.Duration(time.Hour), Op: ">", Threshold: 50,
				For: alerting.Duration(2 * time.Hour), Severity: "warning", Filters: map[string]string{"network_type": "cellular"}},
		},
		Receivers: []alerting.Receiver{{Name: "hook", Type: alerting.TypeWebhook, URL: hook.URL}},
		Routes:    []alerting.Route{{Receiver: "hook"}},
	}
	asvc, err := alerting.New(ctx, alerting.Options{Config: cfg, Store: astore, Metrics: metrics.New(store), Telemetry: store,
		Clock: clock, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		astore.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		asvc.Stop()
		astore.Close()
	})
	if _, err := asvc.AddSilence(ctx, jobcast.Silence{
		Matchers: []jobcast.Matcher{{Name: "pipeline", Value: "csv_import", IsEqual: true}},
		StartsAt: clock.Now().Add(-time.Minute), EndsAt: clock.Now().Add(time.Hour), CreatedBy: "test", Comment: "known import errors",
	}); err != nil {
		t.Fatal(err)
	}
	asvc.Evaluate(ctx)

	estore, err := sqlite.OpenExperimentStore(ctx, filepath.Join(dir, "experiments.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { estore.Close() })
	esvc, err := experiment.New(ctx, experiment.Options{Store: estore, Telemetry: store, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	e := experiment.Defaults()
	control, variant := int64(3000), int64(4500)
	e.ID, e.Parameter, e.Control, e.Variant, e.Status = fixtureExpID, jobcast.ParamHeartbeatInterval, &control, &variant, jobcast.ExperimentRunning
	e.Description = "heartbeat 3 s vs 4.5 s"
	if _, err := esvc.Put(ctx, e); err != nil {
		t.Fatal(err)
	}
	var exposures []jobcast.Event
	for i := range 24 {
		arm, value := "control", "3000"
		if i%2 == 1 {
			arm, value = "variant", "4500"
		}
		exposures = append(exposures, jobcast.Event{TS: clock.Now().Add(-time.Hour + time.Duration(2*i+1)*time.Minute + 6*time.Second),
			Event: jobcast.EventExposure, Node: "n1", JobID: fmt.Sprintf("job-%02d", i), ExperimentID: fixtureExpID, Variant: arm,
			Param: jobcast.ParamHeartbeatInterval, Value: value, SampleInterval: 1})
	}
	if err := store.Write(ctx, exposures); err != nil {
		t.Fatal(err)
	}
	return asvc, esvc
}

// waitHistory polls until the alerting service has recorded n
// notifications (they are sent by its workers).
func waitHistory(t *testing.T, svc *alerting.Service, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, err := svc.History(context.Background(), 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("notification history has %d rows, want %d", len(h), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
