package jobcast

import (
	"context"
	"time"
)

// Telemetry event names (SPEC §4). Strategic logging: connection level, job
// summaries and every error, never one row per progress frame.
const (
	EventConnected     = "connected"
	EventReconnected   = "reconnected"
	EventDisconnected  = "disconnected"
	EventConnectFailed = "connect_failed"
	EventJobStarted    = "job_started"
	EventJobCompleted  = "job_completed"
	EventJobFailed     = "job_failed"
	EventError         = "error"
	EventHeartbeat     = "heartbeat"
	EventExposure      = "exposure"
)

// Reasons recorded with connect_failed.
const (
	ReasonTokenExpired   = "token_expired"
	ReasonTokenInvalid   = "token_invalid"
	ReasonTokenRevoked   = "token_revoked"
	ReasonJobNotFound    = "job_not_found"
	ReasonRateLimited    = "rate_limited"
	ReasonTooManyConns   = "too_many_connections"
	ReasonBadRequest     = "bad_request"
	ReasonShuttingDown   = "shutting_down"
	ReasonUnavailable    = "unavailable" // a store the handshake needs is down (NATS, a full disk)
	ReasonHelloTimeout   = "hello_timeout"
	ReasonInternal       = "internal"
	ReasonOriginRejected = "origin_rejected"
)

// Event is one row of the wide telemetry table `events`. Fields that do not
// apply to an event stay zero. It is a plain value so that recording one
// copies it into a buffer without allocating.
type Event struct {
	TS          time.Time
	Event       string
	Node        string
	JobID       string
	Pipeline    string
	ConnID      string
	AppVersion  string
	OSVersion   string
	NetworkType string
	DeviceModel string
	// ErrorCode, Provider and Retryable describe error, job_failed and
	// connect_failed events.
	ErrorCode string
	Provider  string
	Retryable bool
	// Reason says why: a connect_failed reason, a disconnect reason.
	Reason string
	// CloseCode is the WebSocket close code of a disconnected event.
	CloseCode int
	// RTTMs is a heartbeat's round trip on the server's clock.
	RTTMs float64
	// DurationMs is a connection's (disconnected) or a job's (job_completed,
	// job_failed) duration.
	DurationMs int64
	// Counters of a connection (disconnected) or a job (job summaries).
	MessagesSent     int64
	BytesSent        int64
	MessagesReceived int64
	ProgressSent     int64 // job_progress frames sent (throttle rate's denominator)
	ThrottledCount   int64 // job_progress frames coalesced away
	ReconnectCount   int64 // X-Reconnect-Attempt of a (re)connection
	SuccessCount     int64
	FailureCount     int64
	TotalCount       int64
	// Experiment exposure.
	ExperimentID string
	Variant      string
	Param        string
	Value        string
	// SampleInterval > 1 means this event stands for that many (sampled
	// heartbeats); every metric weights by it. 0 is read as 1.
	SampleInterval int64
}

// EventRecorder takes telemetry events on the hot path. Record must not
// block or allocate; implementations buffer and write in batches, dropping
// (and counting) when the buffer is full. The event is passed by value: a
// pointer would make every caller's event escape to the heap.
type EventRecorder interface {
	Record(e Event)
}

// NopRecorder drops every event; for tests and tools that record nothing.
type NopRecorder struct{}

// Record implements EventRecorder.
func (NopRecorder) Record(Event) {}

// Rows is a query answer: column names and rows of driver values
// (int64, float64, string, bool, time.Time or nil).
type Rows struct {
	Columns   []string `json:"columns"`
	Rows      [][]any  `json:"rows"`
	Truncated bool     `json:"truncated,omitempty"`
}

// QueryLimits bound an untrusted query.
type QueryLimits struct {
	Timeout time.Duration // statement time limit
	MaxRows int           // rows returned at most; more sets Truncated
}

// TelemetryStore persists telemetry events and answers queries over them.
// Implementations: duckdb (embedded) and, later, ClickHouse (cluster). The
// metrics package writes its SQL for the store's Dialect.
type TelemetryStore interface {
	// Write appends events. The recorder calls it from one goroutine, or
	// from as many as a store that implements telemetry.ConcurrentWriter
	// asks for.
	Write(ctx context.Context, events []Event) error
	// Query runs a read-only statement written by this program (the metrics
	// library) with positional arguments.
	Query(ctx context.Context, query string, args ...any) (*Rows, error)
	// QueryUntrusted runs SQL typed by an admin in a sandbox: read-only, on
	// the events table only, no file or network access, within limits.
	// Refusals are *Error with code E_BAD_REQUEST and a clear message.
	QueryUntrusted(ctx context.Context, query string, limits QueryLimits) (*Rows, error)
	// DeleteBefore deletes events older than t (retention), and whatever
	// the store derived from them.
	DeleteBefore(ctx context.Context, t time.Time) (int64, error)
	// Rollup brings the store's pre-aggregated daily rollups up to date for
	// the UTC days that ended at or before before, and returns how many days
	// it built. Rollups only make metrics faster, never different: a store
	// without them, or whose engine maintains them on insert (ClickHouse
	// materialized views), builds nothing and returns 0.
	Rollup(ctx context.Context, before time.Time) (int, error)
	// Dialect names the SQL dialect: "duckdb" or "clickhouse".
	Dialect() string
	Close() error
}
