package alerting

import (
	"time"

	"github.com/jobcast/jobcast/metrics"
)

// Names of the default rules.
const (
	RuleErrorRate           = "error_rate_high"
	RuleConnectionDuration  = "connection_duration_short"
	RuleReconnects          = "reconnects_high"
	RuleRTT                 = "rtt_high"
	RuleJobHang             = "job_hang"
	RuleTokenExpiryFailures = "token_expiry_failures"
	RuleThrottleRate        = "throttle_rate_high"
)

// jobHangSQL counts, per pipeline, the jobs that started more than five
// minutes ago (within the last day) and have neither completed nor failed.
// It is written in SQL that DuckDB and ClickHouse both read.
const jobHangSQL = `SELECT pipeline, count(*) AS value
FROM (
  SELECT job_id,
         min(pipeline) AS pipeline,
         min(CASE WHEN event = 'job_started' THEN ts END) AS started,
         sum(CASE WHEN event IN ('job_completed', 'job_failed') THEN 1 ELSE 0 END) AS finished
  FROM events
  WHERE ts >= {{from}} AND ts < {{to}} AND job_id <> ''
  GROUP BY job_id
) AS jobs
WHERE started IS NOT NULL AND finished = 0 AND started < {{to-5m}}
GROUP BY pipeline`

// DefaultRules returns the seven rules SPEC §6 ships, enabled, with `for: 0`:
// their windows already smooth them.
func DefaultRules() []Rule {
	d := func(x time.Duration) Duration { return Duration(x) }
	return []Rule{
		{
			Name: RuleErrorRate, Metric: metrics.ErrorRate, Window: d(10 * time.Minute),
			Op: ">", Threshold: 0.05, Severity: "critical",
			Annotations: map[string]string{
				"summary":     "Error rate {{ pct .Value }} over 10m (threshold {{ pct .Threshold }})",
				"description": "Share of sessions (jobs) with at least one error or failed connection.",
			},
		},
		{
			Name: RuleConnectionDuration, Metric: metrics.AvgConnectionDurationMs, Window: d(10 * time.Minute),
			Op: "<", Threshold: 10000, Severity: "critical",
			Annotations: map[string]string{
				"summary":     "Connections last {{ num .Value }} ms on average (below {{ num .Threshold }} ms): clients are flapping",
				"description": "Mean lifetime of the connections that ended in the last 10 minutes.",
			},
		},
		{
			Name: RuleReconnects, Metric: metrics.Reconnects, Window: d(time.Minute),
			Op: ">", Threshold: 10, Severity: "critical",
			Annotations: map[string]string{
				"summary": "{{ num .Value }} reconnects in the last minute (more than {{ num .Threshold }})",
			},
		},
		{
			Name: RuleRTT, Metric: metrics.RTTAvgMs, Window: d(5 * time.Minute),
			Op: ">", Threshold: 2000, Severity: "critical",
			Annotations: map[string]string{
				"summary": "Average heartbeat RTT {{ num .Value }} ms over 5m (above {{ num .Threshold }} ms)",
			},
		},
		{
			Name: RuleJobHang, SQL: jobHangSQL, Window: d(24 * time.Hour),
			Op: ">", Threshold: 0, Severity: "warning",
			Annotations: map[string]string{
				"summary":     "{{ num .Value }} job(s) of {{ .Labels.pipeline }} running for more than 5 minutes without finishing",
				"description": "A job that started and has neither completed nor failed may hang.",
			},
		},
		{
			Name: RuleTokenExpiryFailures, Metric: metrics.TokenExpiryFailures, Window: d(time.Hour),
			Op: ">", Threshold: 1, Severity: "warning",
			Annotations: map[string]string{
				"summary": "{{ num .Value }} connections refused with an expired token in the last hour",
			},
		},
		{
			Name: RuleThrottleRate, Metric: metrics.ThrottleRate, Window: d(10 * time.Minute),
			Op: ">", Threshold: 0.5, Severity: "warning",
			Annotations: map[string]string{
				"summary": "Throttle rate {{ pct .Value }} over 10m (above {{ pct .Threshold }})",
			},
		},
	}
}
