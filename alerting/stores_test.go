package alerting_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/alerting"
	"github.com/jobcast/jobcast/clickhouse"
	"github.com/jobcast/jobcast/clickhouse/chtest"
	"github.com/jobcast/jobcast/duckdb"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/metrics"
	"github.com/jobcast/jobcast/sqlite"
)

// TestDefaultRulesOnEveryStore evaluates the seven default rules and a
// custom SQL rule once over the same events on each telemetry store, the
// ClickHouse one against a real server (chtest: required in CI): the
// custom SQL's {{from}}, {{to}} and {{to-5m}} must become literals the
// store's ts column compares with (ClickHouse 18.16 has no DateTime64, and
// its Decimal64(3) ts takes no INTERVAL arithmetic). Every value is
// computed by hand from the events below.
func TestDefaultRulesOnEveryStore(t *testing.T) {
	t.Parallel()
	stores := []struct {
		name string
		open func(t *testing.T) jobcast.TelemetryStore
	}{
		{"duckdb", func(t *testing.T) jobcast.TelemetryStore {
			s, err := duckdb.Open(context.Background(), filepath.Join(t.TempDir(), "telemetry.duckdb"), duckdb.Options{Threads: 1, MemoryLimit: "256MB"})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"clickhouse", func(t *testing.T) jobcast.TelemetryStore {
			s, err := clickhouse.Open(context.Background(), clickhouse.Config{URL: chtest.URL(t)})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	}
	now := t0
	at := func(d time.Duration) time.Time { return now.Add(-d) }
	const sec, minute = time.Second, time.Minute
	events := []jobcast.Event{
		// Hangs: started 6 minutes ago, never finished (job_hang, csv: 1).
		{TS: at(6 * minute), Event: jobcast.EventJobStarted, JobID: "hang", Pipeline: "csv"},
		{TS: at(6 * minute), Event: jobcast.EventConnected, JobID: "hang", Pipeline: "csv", ConnID: "c1"},
		// One heartbeat of 3000 ms (rtt_high: 3000).
		{TS: at(30 * sec), Event: jobcast.EventHeartbeat, JobID: "hang", Pipeline: "csv", RTTMs: 3000, SampleInterval: 1},
		// Finished: not a hang; its connection lasted 4 s (connection_duration_short:
		// 4000) with 30 frames throttled of 40 (throttle_rate_high: 0.75).
		{TS: at(6 * minute), Event: jobcast.EventJobStarted, JobID: "done", Pipeline: "csv"},
		{TS: at(2 * minute), Event: jobcast.EventDisconnected, JobID: "done", Pipeline: "csv", ConnID: "c2", DurationMs: 4000, ProgressSent: 10, ThrottledCount: 30},
		{TS: at(2 * minute), Event: jobcast.EventJobCompleted, JobID: "done", Pipeline: "csv"},
		// Started a minute ago: not yet a hang.
		{TS: at(minute), Event: jobcast.EventJobStarted, JobID: "fresh", Pipeline: "video"},
		// Started 25 hours ago: outside job_hang's day.
		{TS: at(25 * time.Hour), Event: jobcast.EventJobStarted, JobID: "old", Pipeline: "old"},
		// One job of the four seen in 10 minutes errs (error_rate_high: 0.25),
		// twice refused with an expired token (token_expiry_failures: 2).
		{TS: at(30 * sec), Event: jobcast.EventError, JobID: "err", Pipeline: "csv", ErrorCode: "E_GEMINI_TIMEOUT", Provider: "gemini"},
		{TS: at(30 * sec), Event: jobcast.EventConnectFailed, JobID: "err", Pipeline: "csv", Reason: "token_expired"},
		{TS: at(40 * sec), Event: jobcast.EventConnectFailed, JobID: "err", Pipeline: "csv", Reason: "token_expired"},
		// A Gemini timeout 11 minutes ago: outside the custom rule's window.
		{TS: at(11 * minute), Event: jobcast.EventError, ErrorCode: "E_GEMINI_TIMEOUT", Provider: "gemini"},
	}
	// 11 reconnects in the last minute (reconnects_high: 11).
	for range 11 {
		events = append(events, jobcast.Event{TS: at(20 * sec), Event: jobcast.EventReconnected, JobID: "hang", Pipeline: "csv", ConnID: "c1"})
	}
	custom := alerting.Rule{
		Name: "gemini_timeouts",
		SQL: `SELECT provider, count(*) AS value FROM events
WHERE event = 'error' AND error_code = 'E_GEMINI_TIMEOUT' AND ts >= {{from}} AND ts < {{to}}
GROUP BY provider`,
		Window: alerting.Duration(10 * minute), Op: ">", Threshold: 0, Severity: "critical",
	}
	// Only the first minute of the window: the error 30 s ago is after it.
	early := alerting.Rule{
		Name: "gemini_timeouts_early",
		SQL: `SELECT count(*) AS value FROM events
WHERE event = 'error' AND ts >= {{from}} AND ts < {{ to - 9m }}`,
		Window: alerting.Duration(10 * minute), Op: "==", Threshold: 0, Severity: "warning",
	}
	want := map[string]map[string]float64{
		alerting.RuleErrorRate:           {"{}": 0.25},
		alerting.RuleConnectionDuration:  {"{}": 4000},
		alerting.RuleReconnects:          {"{}": 11},
		alerting.RuleRTT:                 {"{}": 3000},
		alerting.RuleJobHang:             {"{pipeline=csv}": 1},
		alerting.RuleTokenExpiryFailures: {"{}": 2},
		alerting.RuleThrottleRate:        {"{}": 0.75},
		custom.Name:                      {"{provider=gemini}": 1},
		early.Name:                       {"{}": 0},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			tel := st.open(t)
			t.Cleanup(func() { tel.Close() })
			if err := tel.Write(context.Background(), events); err != nil {
				t.Fatal(err)
			}
			as, err := sqlite.OpenAlertStore(context.Background(), filepath.Join(t.TempDir(), "jobcast.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { as.Close() })
			svc, err := alerting.New(context.Background(), alerting.Options{
				Config:    alerting.Config{Rules: []alerting.Rule{custom, early}},
				Metrics:   metrics.New(tel),
				Telemetry: tel,
				Store:     as,
				Clock:     clocktest.New(now),
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(svc.Stop)
			svc.Evaluate(context.Background())
			snap, err := svc.Snapshot(context.Background(), 0)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]map[string]float64{}
			for _, a := range snap.Firing {
				if got[a.Rule] == nil {
					got[a.Rule] = map[string]float64{}
				}
				got[a.Rule][labelKey(a.Labels)] = a.Value
			}
			for _, list := range [][]alerting.AlertStatus{snap.Pending, snap.Silenced, snap.Resolved} {
				for _, a := range list {
					t.Errorf("%s %v: %s, want firing", a.Rule, a.Labels, a.State)
				}
			}
			for rule, w := range want {
				if len(got[rule]) != len(w) {
					t.Errorf("%s: firing %v, want %v", rule, got[rule], w)
					continue
				}
				for k, v := range w {
					if g, ok := got[rule][k]; !ok || g < v-1e-9 || g > v+1e-9 {
						t.Errorf("%s%s = %v (firing: %v), want %v", rule, k, g, ok, v)
					}
				}
			}
			for rule := range got {
				if want[rule] == nil {
					t.Errorf("%s fired: %v", rule, got[rule])
				}
			}
		})
	}
}
