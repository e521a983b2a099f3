package metrics

import (
	"slices"

	"github.com/jobcast/jobcast"
)

// Metric names, as accepted by Query.Metric. They are the names GraphQL,
// alert rules and the dashboard use.
const (
	ConnectionSuccessRate   = "connection_success_rate"
	Connections             = "connections"
	Reconnects              = "reconnects"
	ConnectFailures         = "connect_failures"
	TokenExpiryFailures     = "token_expiry_failures"
	AvgConnectionDurationMs = "avg_connection_duration_ms"
	ReconnectsPerSession    = "reconnects_per_session"
	ErrorRate               = "error_rate"
	RTTAvgMs                = "rtt_avg_ms"
	RTTP50Ms                = "rtt_p50_ms"
	RTTP95Ms                = "rtt_p95_ms"
	RTTP99Ms                = "rtt_p99_ms"
	ThrottleRate            = "throttle_rate"
	MessagesSent            = "messages_sent"
	MessageRate             = "message_rate"
	BytesPerMessage         = "bytes_per_message"
	JobsStarted             = "jobs_started"
	JobsCompleted           = "jobs_completed"
	JobsFailed              = "jobs_failed"
	JobCompletionRate       = "job_completion_rate"
	Heartbeats              = "heartbeats"
)

// Units of the metrics, in Result.Unit and Definition.Unit. A ratio is a
// fraction between 0 and 1, not a percentage.
const (
	UnitRatio                = "ratio"
	UnitCount                = "count"
	UnitMs                   = "ms"
	UnitMessagesPerSecond    = "messages/s"
	UnitBytesPerMessage      = "bytes/message"
	UnitReconnectsPerSession = "reconnects/session"
)

// Dimensions a Query may filter and group by: the client context and the
// pipeline, which have few distinct values. Other columns (job_id, conn_id,
// reason, …) are refused, so a query cannot fan out into millions of groups.
var dimensions = []string{"pipeline", "app_version", "os_version", "network_type", "device_model"}

// Dimensions returns the columns a Query may filter and group by.
func Dimensions() []string { return slices.Clone(dimensions) }

// Definition describes a metric for humans and for the surfaces that list
// them (GraphQL schema docs, the dashboard, alert rule validation).
type Definition struct {
	Name        string
	Unit        string
	Description string
	// Formula is the exact definition over the events table: w is
	// sample_interval; Σw[e] sums w over the rows of event e in the window
	// that match the filters, Σ(x·w)[e] sums x·w; distinct[e] counts the
	// distinct non-empty job_ids of those rows.
	Formula string
}

// kind says how a metric's SQL answer becomes a Point.
type kind int

const (
	// kindSum: Value = num, Weight = num. Additive: a bucket without
	// events is a point with Value 0.
	kindSum kind = iota
	// kindPerSecond: Value = num / seconds of the window (or of the part of
	// the bucket inside the window), Weight = those seconds. Additive.
	kindPerSecond
	// kindRatio: Value = num / den, Weight = den; no point when den = 0.
	kindRatio
	// kindQuantile: Value = the weighted quantile of column `value`,
	// Weight = Σw of the samples; no point without samples.
	kindQuantile
)

// metric is a Definition and the SQL that implements it.
type metric struct {
	Definition
	kind kind
	// events restricts the rows to these event names; nil means every event.
	events []string
	// sessionsOnly restricts the rows to those with a job_id.
	sessionsOnly bool
	// perJob, when set, makes the statement aggregate per job (and group)
	// first: it returns that level's aggregates, aliased, and num and den
	// aggregate the jobs' rows. Two distinct-job counts cost two hash
	// tables of job ids; this way they cost one (error_rate over 10 million
	// events: 199 against 225 ms, by network and day 712 against 907).
	perJob func(d dialect) string
	// num and den are aggregate expressions (den only for kindRatio) over
	// the rows of src: events, or the rollup_events of whole days.
	num, den func(d dialect, s src) string
	// jobsNum and jobsDen, when set, make a distinct-job metric computable
	// from rollup_jobs: a condition on its columns (errored, connected,
	// true) selecting the jobs to count; an empty jobsNum means num comes
	// from rollup_events. Distinct-job metrics without them (none now) and
	// perJob metrics without them are computed from events only.
	jobsNum, jobsDen string
	// value is the column a kindQuantile metric ranks.
	value string
	// quantile is the level of a kindQuantile metric in basis points
	// (9500 = p95), so that SQL compares integers.
	quantile int
}

// w is the weight of one row: how many events it stands for.
const w = "sample_interval"

// src is what the aggregate expressions of a metric run over: the events
// table, or the rollup_events table, whose rows are (day, event,
// dimensions) groups of events with w = Σw and, for each numeric column x
// a metric sums, x = Σ(x·w) under x's own name.
type src struct {
	// w is a row's weight.
	w string
	// x returns a row's contribution to Σ(expr·w), expr a sum of columns.
	x func(expr string) string
	// tokenExpired is the expression summing the weights of connect_failed
	// events with reason token_expired.
	tokenExpired func(d dialect) string
}

var (
	rawSrc = src{
		w: w,
		x: func(expr string) string { return expr + " * " + w },
		tokenExpired: func(d dialect) string {
			return d.sumIf(w, "reason = '"+jobcast.ReasonTokenExpired+"'")
		},
	}
	rollupSrc = src{
		w:            "w",
		x:            func(expr string) string { return expr },
		tokenExpired: func(dialect) string { return "sum(w_token_expired)" },
	}
)

// sumW and friends build the aggregate expressions of the table below.
func sumW(_ dialect, s src) string { return "sum(" + s.w + ")" }
func sumOf(col string) func(dialect, src) string {
	return func(_ dialect, s src) string { return "sum(" + s.x(col) + ")" }
}
func sumWIf(events ...string) func(dialect, src) string {
	return func(d dialect, s src) string { return d.sumIf(s.w, d.inList("event", events)) }
}

// catalog is every metric, in the order Definitions lists them.
var catalog = []metric{
	{
		Definition: Definition{ConnectionSuccessRate, UnitRatio,
			"Share of connection attempts that opened a WebSocket.",
			"(Σw[connected] + Σw[reconnected]) / (Σw[connected] + Σw[reconnected] + Σw[connect_failed])"},
		kind:   kindRatio,
		events: []string{jobcast.EventConnected, jobcast.EventReconnected, jobcast.EventConnectFailed},
		num:    sumWIf(jobcast.EventConnected, jobcast.EventReconnected),
		den:    sumW,
	},
	{
		Definition: Definition{Connections, UnitCount,
			"Connections opened, first ones and reconnects.",
			"Σw[connected] + Σw[reconnected]"},
		kind:   kindSum,
		events: []string{jobcast.EventConnected, jobcast.EventReconnected},
		num:    sumW,
	},
	{
		Definition: Definition{Reconnects, UnitCount,
			"Reconnections (a client coming back with lastSeq or a reconnect attempt).",
			"Σw[reconnected]"},
		kind:   kindSum,
		events: []string{jobcast.EventReconnected},
		num:    sumW,
	},
	{
		Definition: Definition{ConnectFailures, UnitCount,
			"Connection attempts refused or failed before the WebSocket opened.",
			"Σw[connect_failed]"},
		kind:   kindSum,
		events: []string{jobcast.EventConnectFailed},
		num:    sumW,
	},
	{
		Definition: Definition{TokenExpiryFailures, UnitCount,
			"Connection attempts refused because the token had expired.",
			"Σw[connect_failed with reason = 'token_expired']"},
		kind:   kindSum,
		events: []string{jobcast.EventConnectFailed},
		num:    func(d dialect, s src) string { return s.tokenExpired(d) },
	},
	{
		Definition: Definition{AvgConnectionDurationMs, UnitMs,
			"Mean lifetime of the connections that ended in the window.",
			"Σ(duration_ms·w)[disconnected] / Σw[disconnected]"},
		kind:   kindRatio,
		events: []string{jobcast.EventDisconnected},
		num:    sumOf("duration_ms"),
		den:    sumW,
	},
	{
		Definition: Definition{ReconnectsPerSession, UnitReconnectsPerSession,
			"Reconnections per session (job) that had a connection in the window.",
			"Σw[reconnected] / distinct[connected, reconnected]"},
		kind:    kindRatio,
		events:  []string{jobcast.EventConnected, jobcast.EventReconnected},
		num:     sumWIf(jobcast.EventReconnected),
		den:     func(d dialect, _ src) string { return d.countDistinctIf("job_id", "job_id <> ''") },
		jobsDen: "connected",
	},
	{
		Definition: Definition{ErrorRate, UnitRatio,
			"Share of sessions (jobs) seen in the window with at least one error or failed connection.",
			"distinct[error, connect_failed] / distinct[any event]"},
		kind:         kindRatio,
		sessionsOnly: true,
		perJob: func(d dialect) string {
			return d.boolOr(d.inList("event", []string{jobcast.EventError, jobcast.EventConnectFailed})) + " AS errored"
		},
		num:     func(d dialect, _ src) string { return d.sumIf("1", "errored") },
		den:     func(dialect, src) string { return "count(*)" },
		jobsNum: "errored",
		jobsDen: "true",
	},
	{
		Definition: Definition{RTTAvgMs, UnitMs,
			"Mean heartbeat round trip (ping to pong on the server's clock).",
			"Σ(rtt_ms·w)[heartbeat] / Σw[heartbeat]"},
		kind:   kindRatio,
		events: []string{jobcast.EventHeartbeat},
		num:    sumOf("rtt_ms"),
		den:    sumW,
	},
	rttQuantile(RTTP50Ms, 5000, "Median"),
	rttQuantile(RTTP95Ms, 9500, "95th percentile of the"),
	rttQuantile(RTTP99Ms, 9900, "99th percentile of the"),
	{
		Definition: Definition{ThrottleRate, UnitRatio,
			"Share of progress frames coalesced away by throttling, over the connections that ended in the window.",
			"Σ(throttled_count·w)[disconnected] / (Σ(throttled_count·w)[disconnected] + Σ(progress_sent·w)[disconnected])"},
		kind:   kindRatio,
		events: []string{jobcast.EventDisconnected},
		num:    sumOf("throttled_count"),
		den:    sumOf("(throttled_count + progress_sent)"),
	},
	{
		Definition: Definition{MessagesSent, UnitCount,
			"Frames sent to clients, counted when their connection ends.",
			"Σ(messages_sent·w)[disconnected]"},
		kind:   kindSum,
		events: []string{jobcast.EventDisconnected},
		num:    sumOf("messages_sent"),
	},
	{
		Definition: Definition{MessageRate, UnitMessagesPerSecond,
			"Frames sent to clients per second of the window (or bucket), counted when their connection ends.",
			"Σ(messages_sent·w)[disconnected] / seconds of the window (of the bucket's part inside the window)"},
		kind:   kindPerSecond,
		events: []string{jobcast.EventDisconnected},
		num:    sumOf("messages_sent"),
	},
	{
		Definition: Definition{BytesPerMessage, UnitBytesPerMessage,
			"Mean size of a frame sent to clients.",
			"Σ(bytes_sent·w)[disconnected] / Σ(messages_sent·w)[disconnected]"},
		kind:   kindRatio,
		events: []string{jobcast.EventDisconnected},
		num:    sumOf("bytes_sent"),
		den:    sumOf("messages_sent"),
	},
	{
		Definition: Definition{JobsStarted, UnitCount, "Jobs that started.", "Σw[job_started]"},
		kind:       kindSum,
		events:     []string{jobcast.EventJobStarted},
		num:        sumW,
	},
	{
		Definition: Definition{JobsCompleted, UnitCount, "Jobs that completed.", "Σw[job_completed]"},
		kind:       kindSum,
		events:     []string{jobcast.EventJobCompleted},
		num:        sumW,
	},
	{
		Definition: Definition{JobsFailed, UnitCount, "Jobs that failed.", "Σw[job_failed]"},
		kind:       kindSum,
		events:     []string{jobcast.EventJobFailed},
		num:        sumW,
	},
	{
		Definition: Definition{JobCompletionRate, UnitRatio,
			"Share of the jobs that finished in the window which completed rather than failed.",
			"Σw[job_completed] / (Σw[job_completed] + Σw[job_failed])"},
		kind:   kindRatio,
		events: []string{jobcast.EventJobCompleted, jobcast.EventJobFailed},
		num:    sumWIf(jobcast.EventJobCompleted),
		den:    sumW,
	},
	{
		Definition: Definition{Heartbeats, UnitCount,
			"Heartbeats answered (ping and pong), sampled ones counted by their sample interval.",
			"Σw[heartbeat]"},
		kind:   kindSum,
		events: []string{jobcast.EventHeartbeat},
		num:    sumW,
	},
}

func rttQuantile(name string, bp int, what string) metric {
	return metric{
		Definition: Definition{name, UnitMs,
			what + " heartbeat round trip, each sample weighted by its sample_interval.",
			"smallest rtt_ms[heartbeat] whose cumulative Σw, in rtt_ms order, is ≥ " +
				formatLevel(bp) + " × Σw[heartbeat]"},
		kind:     kindQuantile,
		events:   []string{jobcast.EventHeartbeat},
		value:    "rtt_ms",
		quantile: bp,
	}
}

// formatLevel writes basis points as a decimal fraction: 9500 → "0.95".
func formatLevel(bp int) string {
	s := []byte{'0', '.', byte('0' + bp/1000), byte('0' + bp/100%10), byte('0' + bp/10%10), byte('0' + bp%10)}
	for len(s) > 3 && s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	return string(s)
}

// Definitions returns every metric, in a stable order.
func Definitions() []Definition {
	defs := make([]Definition, len(catalog))
	for i, m := range catalog {
		defs[i] = m.Definition
	}
	return defs
}

// lookup returns the metric named name.
func lookup(name string) (*metric, bool) {
	for i := range catalog {
		if catalog[i].Name == name {
			return &catalog[i], true
		}
	}
	return nil, false
}
