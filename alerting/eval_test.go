package alerting_test

import (
	"maps"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/alerting"
)

// step advances the clock, writes events (stamped a second before the new
// now, by the function so it can use the time) and evaluates; want is every
// alert of the rule under test, by labels, with its state.
type step struct {
	advance time.Duration
	events  func(now time.Time) []jobcast.Event
	want    map[string]string
}

func none() map[string]string { return map[string]string{} }

func errorRateRule(mod func(*alerting.Rule)) alerting.Rule {
	r := alerting.Rule{Name: "errors", Metric: "error_rate", Window: alerting.Duration(10 * time.Minute), Op: ">", Threshold: 0.05, Severity: "critical"}
	if mod != nil {
		mod(&r)
	}
	return r
}

// TestRuleEvaluation is a table of rules over fixed event sets, as
// `promtool test rules` runs them: a real DuckDB store, a manual clock, one
// evaluation per step.
func TestRuleEvaluation(t *testing.T) {
	t.Parallel()
	sec := time.Second
	bad := func(p string, ok, n int) func(time.Time) []jobcast.Event {
		return func(now time.Time) []jobcast.Event { return sessions(now.Add(-sec), p, ok, n) }
	}
	cases := []struct {
		name  string
		rule  alerting.Rule
		steps []step
	}{
		{
			name: "pending then firing after for",
			rule: errorRateRule(func(r *alerting.Rule) { r.For = alerting.Duration(2 * time.Minute) }),
			steps: []step{
				{events: bad("csv", 1, 1), want: map[string]string{"{}": "pending"}},
				{advance: time.Minute, want: map[string]string{"{}": "pending"}},
				{advance: time.Minute, want: map[string]string{"{}": "firing"}},
				{advance: time.Minute, want: map[string]string{"{}": "firing"}},
			},
		},
		{
			name: "for 0 fires at once and resolves when the condition clears",
			rule: errorRateRule(nil),
			steps: []step{
				{advance: 0, want: none()},
				{events: bad("csv", 3, 1), want: map[string]string{"{}": "firing"}},
				// 200 clean sessions: 1/204 < 5%.
				{advance: 30 * sec, events: bad("csv", 200, 0), want: map[string]string{"{}": "resolved"}},
				// A resolved alert stays listed 15 minutes, then is forgotten.
				{advance: 16 * time.Minute, want: none()},
			},
		},
		{
			name: "no data in the window resolves a ratio rule",
			rule: errorRateRule(nil),
			steps: []step{
				{events: bad("csv", 0, 2), want: map[string]string{"{}": "firing"}},
				{advance: 10*time.Minute + sec, want: map[string]string{"{}": "resolved"}},
			},
		},
		{
			name: "flapping below for never fires; pending starts over",
			rule: errorRateRule(func(r *alerting.Rule) { r.For = alerting.Duration(2 * time.Minute) }),
			steps: []step{
				{events: bad("csv", 1, 1), want: map[string]string{"{}": "pending"}},
				{advance: 90 * sec, events: bad("csv", 100, 0), want: none()},
				{advance: 30 * sec, events: bad("csv", 0, 20), want: map[string]string{"{}": "pending"}},
				{advance: 90 * sec, want: map[string]string{"{}": "pending"}},
				{advance: 30 * sec, want: map[string]string{"{}": "firing"}},
			},
		},
		{
			name: "keepFiringFor rides out a short clear",
			rule: errorRateRule(func(r *alerting.Rule) { r.KeepFiringFor = alerting.Duration(5 * time.Minute) }),
			steps: []step{
				{events: bad("csv", 0, 1), want: map[string]string{"{}": "firing"}},
				{advance: time.Minute, events: bad("csv", 100, 0), want: map[string]string{"{}": "firing"}},
				{advance: 2 * time.Minute, events: bad("csv", 0, 10), want: map[string]string{"{}": "firing"}},
				{advance: time.Minute, events: bad("csv", 500, 0), want: map[string]string{"{}": "firing"}},
				{advance: 5 * time.Minute, want: map[string]string{"{}": "resolved"}},
			},
		},
		{
			name: "group by pipeline: one alert per pipeline",
			rule: errorRateRule(func(r *alerting.Rule) { r.GroupBy = []string{"pipeline"} }),
			steps: []step{
				{events: func(now time.Time) []jobcast.Event {
					return append(append(sessions(now.Add(-sec), "csv_import", 1, 1), sessions(now.Add(-sec), "ai_scan", 10, 0)...),
						sessions(now.Add(-sec), "batch_enrichment", 5, 5)...)
				}, want: map[string]string{"{pipeline=csv_import}": "firing", "{pipeline=batch_enrichment}": "firing"}},
				{advance: time.Minute, events: bad("csv_import", 100, 0), want: map[string]string{
					"{pipeline=csv_import}": "resolved", "{pipeline=batch_enrichment}": "firing"}},
			},
		},
		{
			name: "filters keep one pipeline",
			rule: errorRateRule(func(r *alerting.Rule) { r.Filters = map[string]string{"pipeline": "ai_scan"} }),
			steps: []step{
				{events: bad("csv_import", 0, 5), want: none()},
				{advance: sec, events: bad("ai_scan", 1, 1), want: map[string]string{"{}": "firing"}},
			},
		},
		{
			name: "less-than rule on a count",
			rule: alerting.Rule{Name: "quiet", Metric: "connections", Window: alerting.Duration(5 * time.Minute), Op: "<", Threshold: 3, Severity: "warning",
				Labels: map[string]string{"team": "mobile"}},
			steps: []step{
				{want: map[string]string{"{team=mobile}": "firing"}},
				{advance: sec, events: bad("csv", 5, 0), want: map[string]string{"{team=mobile}": "resolved"}},
			},
		},
		{
			name: "custom SQL rule: a value per label set",
			rule: alerting.Rule{
				Name: "refusals", Severity: "warning", Window: alerting.Duration(10 * time.Minute), Op: ">=", Threshold: 2,
				SQL: `SELECT reason, count(*) AS value FROM events
				      WHERE event = 'connect_failed' AND ts >= {{from}} AND ts < {{to}} GROUP BY reason`,
			},
			steps: []step{
				{events: func(now time.Time) []jobcast.Event {
					e := func(reason string) jobcast.Event {
						return jobcast.Event{TS: now.Add(-sec), Event: jobcast.EventConnectFailed, Reason: reason, JobID: "j"}
					}
					return []jobcast.Event{e("token_expired"), e("token_expired"), e("rate_limited")}
				}, want: map[string]string{"{reason=token_expired}": "firing"}},
				{advance: 11 * time.Minute, want: map[string]string{"{reason=token_expired}": "resolved"}},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, alerting.Config{DisableDefaults: true, Rules: []alerting.Rule{tc.rule}})
			for i, st := range tc.steps {
				h.clock.Advance(st.advance)
				if st.events != nil {
					h.write(st.events(h.clock.Now())...)
				}
				h.svc.Evaluate(t.Context())
				if got := h.states(tc.rule.Name); !maps.Equal(got, st.want) {
					t.Fatalf("step %d (t0+%s): alerts %v, want %v; rules %+v", i, h.clock.Now().Sub(t0), got, st.want, h.svc.Rules().Rules)
				}
			}
		})
	}
}

// TestDefaultJobHangRule runs the default SQL rule: a job that started more
// than 5 minutes ago and has not finished fires, per pipeline.
func TestDefaultJobHangRule(t *testing.T) {
	t.Parallel()
	h := newHarness(t, alerting.Config{})
	now := h.clock.Now()
	h.write(
		jobcast.Event{TS: now.Add(-10 * time.Minute), Event: jobcast.EventJobStarted, JobID: "stuck", Pipeline: "ai_scan"},
		jobcast.Event{TS: now.Add(-10 * time.Minute), Event: jobcast.EventJobStarted, JobID: "done", Pipeline: "csv_import"},
		jobcast.Event{TS: now.Add(-8 * time.Minute), Event: jobcast.EventJobCompleted, JobID: "done", Pipeline: "csv_import"},
		jobcast.Event{TS: now.Add(-time.Minute), Event: jobcast.EventJobStarted, JobID: "young", Pipeline: "csv_import"},
	)
	h.eval(0)
	if got, want := h.states(alerting.RuleJobHang), map[string]string{"{pipeline=ai_scan}": "firing"}; !maps.Equal(got, want) {
		t.Fatalf("job_hang alerts %v, want %v (health %+v)", got, want, h.svc.Rules().Rules)
	}
	// Five minutes on, the young job hangs too.
	h.eval(5 * time.Minute)
	if got, want := h.states(alerting.RuleJobHang), map[string]string{"{pipeline=ai_scan}": "firing", "{pipeline=csv_import}": "firing"}; !maps.Equal(got, want) {
		t.Fatalf("job_hang alerts %v, want %v", got, want)
	}
	for _, r := range h.svc.Rules().Rules {
		if r.Health.LastError != "" {
			t.Errorf("rule %s: %s", r.Name, r.Health.LastError)
		}
	}
}

// TestDefaultRulesEvaluateCleanly runs every default rule on events that
// touch each metric, so each query runs, and checks none failed.
func TestDefaultRulesEvaluateCleanly(t *testing.T) {
	t.Parallel()
	h := newHarness(t, alerting.Config{})
	now := h.clock.Now().Add(-time.Second)
	var evs []jobcast.Event
	for range 12 {
		evs = append(evs, jobcast.Event{TS: now, Event: jobcast.EventReconnected, JobID: "r", Pipeline: "csv_import"})
	}
	evs = append(evs,
		jobcast.Event{TS: now, Event: jobcast.EventDisconnected, JobID: "r", DurationMs: 2000, ThrottledCount: 9, ProgressSent: 1},
		jobcast.Event{TS: now, Event: jobcast.EventHeartbeat, JobID: "r", RTTMs: 2500},
		jobcast.Event{TS: now, Event: jobcast.EventConnectFailed, JobID: "x", Reason: jobcast.ReasonTokenExpired},
		jobcast.Event{TS: now, Event: jobcast.EventConnectFailed, JobID: "y", Reason: jobcast.ReasonTokenExpired},
	)
	h.write(evs...)
	h.eval(0)
	firing := map[string]bool{}
	for _, a := range h.svc.Alerts() {
		firing[a.Rule] = a.State == jobcast.AlertFiring
	}
	for _, name := range []string{alerting.RuleErrorRate, alerting.RuleConnectionDuration, alerting.RuleReconnects, alerting.RuleRTT, alerting.RuleTokenExpiryFailures, alerting.RuleThrottleRate} {
		if !firing[name] {
			t.Errorf("default rule %s does not fire", name)
		}
	}
	rules := h.svc.Rules().Rules
	if len(rules) != 7 {
		t.Fatalf("%d default rules, want 7", len(rules))
	}
	for _, r := range rules {
		if r.Health.LastError != "" || r.Health.LastEvaluation.IsZero() {
			t.Errorf("rule %s: health %+v", r.Name, r.Health)
		}
		if r.For != 0 || r.Source != "default" {
			t.Errorf("rule %s: for %s, source %s; want for 0 from the defaults", r.Name, r.For, r.Source)
		}
	}
}
