package dashboard_test

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/alerting"
	"github.com/jobcast/jobcast/dashboard"
	"github.com/jobcast/jobcast/experiment"
)

// TestPanelsNotConfigured: without alerting or experiments the panels say
// so (configured false) rather than showing empty, reassuring lists.
func TestPanelsNotConfigured(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	rec := e.do(t, http.MethodGet, "/dashboard/api/overview?range=1h", nil, "Authorization", "Bearer "+adminToken)
	var raw struct {
		Alerts      map[string]any `json:"alerts"`
		Experiments map[string]any `json:"experiments"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Alerts["configured"] != false || raw.Experiments["configured"] != false {
		t.Fatalf("alerts %v, experiments %v", raw.Alerts, raw.Experiments)
	}
	for _, k := range []string{"firing", "pending", "silenced", "resolved", "history"} {
		if l, ok := raw.Alerts[k].([]any); !ok || len(l) != 0 {
			t.Errorf("alerts.%s = %v, want []", k, raw.Alerts[k])
		}
	}
}

// TestAlertsPanel: the panel shows the evaluator's state over the fixture:
// a firing alert per pipeline with value, threshold and a link filtered
// to its pipeline, the silenced one apart, the pending one, and the
// notification sent for the firing one.
func TestAlertsPanel(t *testing.T) {
	t.Parallel()
	var asvc *alerting.Service
	e := newEnv(t, func(o *dashboard.Options) {
		asvc, _ = panelServices(t, o.Events, o.Clock)
		o.Alerts = asvc
	})
	waitHistory(t, asvc, 1)
	a := e.overview(t, "range=15m").Alerts
	if !a.Configured || a.Rules != 2 || !a.EvaluatedAt.Equal(end) {
		t.Fatalf("configured %v, rules %d, evaluated %v", a.Configured, a.Rules, a.EvaluatedAt)
	}
	if len(a.Firing) != 1 {
		t.Fatalf("firing %+v", a.Firing)
	}
	f := a.Firing[0]
	want := dashboard.AlertRow{Rule: ruleErrors, Severity: "critical", State: jobcast.AlertFiring, Op: ">", Threshold: 0.05,
		Window: "1h", Unit: "ratio", Since: end, Link: "/dashboard?pipeline=ai_scan&range=1h"}
	if f.Rule != want.Rule || f.Severity != want.Severity || f.State != want.State || f.Op != want.Op || f.Threshold != want.Threshold ||
		f.Window != want.Window || f.Unit != want.Unit || !f.Since.Equal(want.Since) || f.Link != want.Link || f.Labels["pipeline"] != "ai_scan" {
		t.Errorf("firing row\n got %+v\nwant %+v", f, want)
	}
	if f.Value == nil || math.Abs(*f.Value-0.5) > 1e-9 || !strings.Contains(f.Summary, "50") {
		t.Errorf("firing value %v, summary %q; want 0.5 (6 of 12 ai_scan sessions)", fmtPtr(f.Value), f.Summary)
	}
	if len(a.Silenced) != 1 || a.Silenced[0].Labels["pipeline"] != "csv_import" || len(a.Silenced[0].SilencedBy) != 1 {
		t.Errorf("silenced %+v", a.Silenced)
	}
	if len(a.Pending) != 1 || a.Pending[0].Rule != rulePending || a.Pending[0].Link != "/dashboard?networkType=cellular&range=1h" || a.Pending[0].Unit != "ms" {
		t.Errorf("pending %+v", a.Pending)
	}
	if len(a.Resolved) != 0 {
		t.Errorf("resolved %+v", a.Resolved)
	}
	if len(a.History) != 1 {
		t.Fatalf("history %+v", a.History)
	}
	h := a.History[0]
	if h.Receiver != "hook" || h.Type != alerting.TypeWebhook || h.Status != jobcast.AlertFiring || h.Outcome != jobcast.NotifySent ||
		len(h.Alerts) != 1 || h.Alerts[0] != ruleErrors+`{pipeline="ai_scan"}` {
		t.Errorf("history %+v", h)
	}
}

// fakeAlerts answers a fixed snapshot and rules.
type fakeAlerts struct {
	snap  alerting.Snapshot
	rules alerting.RulesView
}

func (f fakeAlerts) Snapshot(context.Context, int) (alerting.Snapshot, error) { return f.snap, nil }
func (f fakeAlerts) Rules() alerting.RulesView                                { return f.rules }

// TestAlertLinks: an alert links to the dashboard filtered by its rule's
// filters and its dimension labels, over the shortest range covering the
// rule's window; nothing to filter by, no link.
func TestAlertLinks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		filters map[string]string
		labels  map[string]string
		window  time.Duration
		want    string
	}{
		{"no filters", nil, map[string]string{"severity": "critical"}, 10 * time.Minute, ""},
		{"label", nil, map[string]string{"pipeline": "ai_scan", "team": "x"}, 10 * time.Minute, "/dashboard?pipeline=ai_scan&range=15m"},
		{"filter", map[string]string{"app_version": "3.4.0"}, nil, 2 * time.Hour, "/dashboard?appVersion=3.4.0&range=24h"},
		{"both", map[string]string{"network_type": "cellular"}, map[string]string{"os_version": "iOS 18.2"}, 5 * 24 * time.Hour,
			"/dashboard?networkType=cellular&osVersion=iOS+18.2&range=7d"},
		{"long window", nil, map[string]string{"device_model": "Pixel 8"}, 90 * 24 * time.Hour, "/dashboard?deviceModel=Pixel+8&range=30d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rule := alerting.Rule{Name: "r", Metric: "error_rate", Filters: tc.filters, Window: alerting.Duration(tc.window), Op: ">", Severity: "warning"}
			fa := fakeAlerts{
				snap: alerting.Snapshot{Firing: []alerting.AlertStatus{{AlertInstance: jobcast.AlertInstance{Rule: "r", Labels: tc.labels, State: jobcast.AlertFiring}}},
					Pending: []alerting.AlertStatus{}, Silenced: []alerting.AlertStatus{}, Resolved: []alerting.AlertStatus{}},
				rules: alerting.RulesView{Rules: []alerting.RuleStatus{{Rule: rule}}},
			}
			e := newEnv(t, func(o *dashboard.Options) { o.Alerts = fa })
			a := e.overview(t, "range=1h").Alerts
			if len(a.Firing) != 1 || a.Firing[0].Link != tc.want {
				t.Fatalf("firing %+v, want link %q", a.Firing, tc.want)
			}
		})
	}
}

// TestExperimentsPanel: the fixture's experiment with its 12 + 12 exposed
// units: arms, seven metrics with a comparison each, and the verdict that
// it needs 1000 units per arm.
func TestExperimentsPanel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *dashboard.Options) {
		_, o.Experiments = panelServices(t, o.Events, o.Clock)
	})
	x := e.overview(t, "range=1h").Experiments
	if !x.Configured || len(x.Experiments) != 1 {
		t.Fatalf("experiments %+v", x)
	}
	r := x.Experiments[0]
	if r.ID != fixtureExpID || r.Status != jobcast.ExperimentRunning || r.Parameter != jobcast.ParamHeartbeatInterval || r.Control != "control" {
		t.Errorf("experiment %+v", r)
	}
	if len(r.Arms) != 2 || r.Arms[0].Units != 12 || r.Arms[1].Units != 12 || r.Arms[0].Value != 3000 || r.Arms[1].Value != 4500 {
		t.Errorf("arms %+v", r.Arms)
	}
	if r.Verdict != "not enough units: 12/1000" || r.VerdictKind != "waiting" || r.EnoughUnits || r.SRM.Flagged {
		t.Errorf("verdict %q (%s), enough %v, srm %+v", r.Verdict, r.VerdictKind, r.EnoughUnits, r.SRM)
	}
	if len(r.Metrics) != 7 {
		t.Fatalf("metrics %+v", r.Metrics)
	}
	for _, m := range r.Metrics {
		if len(m.Arms) != 2 || len(m.Comparisons) != 1 || m.Comparisons[0].Significant {
			t.Errorf("metric %s: %+v", m.Name, m)
		}
		if m.Name == experiment.MetricAvgConnectionDuration {
			// Every fixture connection lasts 110 s + 1 s per job index.
			if v := float64(m.Arms[0].Value); v < 110_000 || v > 134_000 {
				t.Errorf("control avg duration %v", v)
			}
		}
	}
	// The JSON keeps unknown estimates as null, not 0 or NaN.
	rec := e.do(t, http.MethodGet, "/dashboard/api/overview?range=1h", nil, "Authorization", "Bearer "+adminToken)
	if !json.Valid(rec.Body.Bytes()) || !strings.Contains(rec.Body.String(), `"verdict":"not enough units: 12/1000"`) {
		t.Errorf("overview JSON lacks the verdict: %.300s", rec.Body)
	}
}

// fakeExperiments answers fixed results and counts the computations.
type fakeExperiments struct {
	res   *experiment.Results
	calls *atomic.Int64
}

func (f fakeExperiments) List(context.Context) ([]jobcast.Experiment, error) {
	return []jobcast.Experiment{
		{ID: "draft", Status: jobcast.ExperimentDraft},
		{ID: "x", Parameter: jobcast.ParamThrottle, Status: jobcast.ExperimentRunning},
	}, nil
}

func (f fakeExperiments) Results(context.Context, string) (*experiment.Results, error) {
	f.calls.Add(1)
	return f.res, nil
}

// TestExperimentVerdicts: the verdict checks units, then SRM, then the
// Holm-adjusted comparisons; drafts are not shown; the results are
// computed at most every 5 s.
func TestExperimentVerdicts(t *testing.T) {
	t.Parallel()
	arms := func(a, b int64) []experiment.ArmResult {
		return []experiment.ArmResult{{Name: "control", Units: a}, {Name: "variant", Units: b}}
	}
	metric := func(lift float64, sig bool) []experiment.MetricResult {
		return []experiment.MetricResult{{Name: experiment.MetricReconnectsPerSession,
			Comparisons: []experiment.Comparison{{Variant: "variant", Lift: experiment.Num(lift), Significant: sig}}}}
	}
	for _, tc := range []struct {
		name, want, kind string
		res              experiment.Results
	}{
		{"few units", "not enough units: 640/1000", "waiting",
			experiment.Results{Arms: arms(700, 640), MinUnitsPerArm: 1000, Metrics: metric(0.2, false)}},
		{"srm", "sample ratio mismatch (p = 1e-05): assignment or exposure logging is broken; do not trust these results", "srm",
			experiment.Results{Arms: arms(1500, 1100), MinUnitsPerArm: 1000, EnoughUnits: true,
				SRM: experiment.SRMResult{P: 1e-5, Flagged: true}, Metrics: metric(0.2, false)}},
		{"significant", "significant: reconnects_per_session higher in variant", "significant",
			experiment.Results{Arms: arms(1200, 1190), MinUnitsPerArm: 1000, EnoughUnits: true, Metrics: metric(0.3, true)}},
		{"lower", "significant: reconnects_per_session lower in variant", "significant",
			experiment.Results{Arms: arms(1200, 1190), MinUnitsPerArm: 1000, EnoughUnits: true, Metrics: metric(-0.3, true)}},
		{"none", "no significant difference (Holm-adjusted p ≥ 0.05 for every metric)", "none",
			experiment.Results{Arms: arms(1200, 1190), MinUnitsPerArm: 1000, EnoughUnits: true, Metrics: metric(0.01, false)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calls := &atomic.Int64{}
			e := newEnv(t, func(o *dashboard.Options) { o.Experiments = fakeExperiments{res: &tc.res, calls: calls} })
			x := e.overview(t, "range=1h").Experiments
			if len(x.Experiments) != 1 || x.Experiments[0].ID != "x" {
				t.Fatalf("experiments %+v", x.Experiments)
			}
			if got := x.Experiments[0]; got.Verdict != tc.want || got.VerdictKind != tc.kind {
				t.Errorf("verdict %q (%s), want %q (%s)", got.Verdict, got.VerdictKind, tc.want, tc.kind)
			}
			e.clock.Advance(4 * time.Second)
			e.overview(t, "range=15m")
			if n := calls.Load(); n != 1 {
				t.Errorf("results computed %d times within 5 s, want 1", n)
			}
			e.clock.Advance(2 * time.Second)
			e.overview(t, "range=15m")
			if n := calls.Load(); n != 2 {
				t.Errorf("results computed %d times after 6 s, want 2", n)
			}
		})
	}
}

// TestAlertWithoutValue: an alert whose value is not a number (NaN) is
// shown with a null value; the overview stays valid JSON.
func TestAlertWithoutValue(t *testing.T) {
	t.Parallel()
	fa := fakeAlerts{snap: alerting.Snapshot{Pending: []alerting.AlertStatus{{AlertInstance: jobcast.AlertInstance{Rule: "r", State: jobcast.AlertPending, Value: math.NaN()}}}}}
	e := newEnv(t, func(o *dashboard.Options) { o.Alerts = fa })
	a := e.overview(t, "range=1h").Alerts
	if len(a.Pending) != 1 || a.Pending[0].Value != nil || a.Pending[0].Link != "" || a.Firing == nil {
		t.Fatalf("alerts %+v", a)
	}
}
