package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/jobcast/jobcast"
)

var _ jobcast.TelemetryStore = (*Store)(nil)

// Config configures a Store.
type Config struct {
	// URL is the server's native-protocol address as a DSN:
	// clickhouse://user:password@host:9000/database?dial_timeout=5s. The
	// database is created when missing (default "jobcast").
	URL string
	// Retention, when set, becomes the table's TTL on servers that have TTLs
	// (19.6 and later); DeleteBefore does the same work on any server.
	Retention time.Duration
	// Log receives what the store cannot return as an error.
	Log *slog.Logger
}

// MaxBatchSize is the most events the recorder puts in one Write (the store
// is a telemetry.BatchSizer). A batch is one part on the server, sorted and
// written before the insert returns, and ClickHouse's rate per event falls
// beyond about this size (docs/benchmarks.md): the recorder's default, a
// DuckDB row group, made a backlog's inserts slower, so they timed out and
// the next batch grew again, and the cluster never caught up.
const MaxBatchSize = 16_384

// Store is the ClickHouse jobcast.TelemetryStore.
type Store struct {
	conn driver.Conn
	db   string
	log  *slog.Logger
}

// columns are the events table's columns in insert order.
var columns = []string{
	"ts", "event", "node", "job_id", "pipeline", "conn_id", "app_version", "os_version",
	"network_type", "device_model", "error_code", "provider", "retryable", "reason",
	"close_code", "rtt_ms", "duration_ms", "messages_sent", "bytes_sent", "messages_received",
	"progress_sent", "reconnect_count", "success_count", "failure_count", "total_count",
	"throttled_count", "experiment_id", "variant", "param", "value", "sample_interval",
}

// colIndex is each column's position in columns.
var colIndex = func() map[string]int {
	m := make(map[string]int, len(columns))
	for i, c := range columns {
		m[c] = i
	}
	return m
}()

type stringCol struct {
	name string
	get  func(*jobcast.Event) string
}

type intCol struct {
	name string
	get  func(*jobcast.Event) int64
}

// stringCols and intCols, with ts, retryable, rtt_ms and sample_interval,
// are every column.
var stringCols = []stringCol{
	{"event", func(e *jobcast.Event) string { return e.Event }},
	{"node", func(e *jobcast.Event) string { return e.Node }},
	{"job_id", func(e *jobcast.Event) string { return e.JobID }},
	{"pipeline", func(e *jobcast.Event) string { return e.Pipeline }},
	{"conn_id", func(e *jobcast.Event) string { return e.ConnID }},
	{"app_version", func(e *jobcast.Event) string { return e.AppVersion }},
	{"os_version", func(e *jobcast.Event) string { return e.OSVersion }},
	{"network_type", func(e *jobcast.Event) string { return e.NetworkType }},
	{"device_model", func(e *jobcast.Event) string { return e.DeviceModel }},
	{"error_code", func(e *jobcast.Event) string { return e.ErrorCode }},
	{"provider", func(e *jobcast.Event) string { return e.Provider }},
	{"reason", func(e *jobcast.Event) string { return e.Reason }},
	{"experiment_id", func(e *jobcast.Event) string { return e.ExperimentID }},
	{"variant", func(e *jobcast.Event) string { return e.Variant }},
	{"param", func(e *jobcast.Event) string { return e.Param }},
	{"value", func(e *jobcast.Event) string { return e.Value }},
}

var intCols = []intCol{
	{"close_code", func(e *jobcast.Event) int64 { return int64(e.CloseCode) }},
	{"duration_ms", func(e *jobcast.Event) int64 { return e.DurationMs }},
	{"messages_sent", func(e *jobcast.Event) int64 { return e.MessagesSent }},
	{"bytes_sent", func(e *jobcast.Event) int64 { return e.BytesSent }},
	{"messages_received", func(e *jobcast.Event) int64 { return e.MessagesReceived }},
	{"progress_sent", func(e *jobcast.Event) int64 { return e.ProgressSent }},
	{"reconnect_count", func(e *jobcast.Event) int64 { return e.ReconnectCount }},
	{"success_count", func(e *jobcast.Event) int64 { return e.SuccessCount }},
	{"failure_count", func(e *jobcast.Event) int64 { return e.FailureCount }},
	{"total_count", func(e *jobcast.Event) int64 { return e.TotalCount }},
	{"throttled_count", func(e *jobcast.Event) int64 { return e.ThrottledCount }},
}

// schema is the events table. String columns default to ” and numbers to
// 0, so a zero field is a zero, not a NULL, as in DuckDB.
const schema = `CREATE TABLE IF NOT EXISTS %s.events (
	ts Decimal64(3),
	event String, node String, job_id String, pipeline String, conn_id String,
	app_version String, os_version String, network_type String, device_model String,
	error_code String, provider String, retryable UInt8, reason String,
	close_code Int64, rtt_ms Float64, duration_ms Int64, messages_sent Int64,
	bytes_sent Int64, messages_received Int64, progress_sent Int64, reconnect_count Int64,
	success_count Int64, failure_count Int64, total_count Int64, throttled_count Int64,
	experiment_id String, variant String, param String, value String, sample_interval Int64
) ENGINE = MergeTree
PARTITION BY intDiv(toUInt32(ts), 86400)
ORDER BY (event, pipeline, network_type, app_version, ts)%s`

// Open connects, creates the database and the events table when missing, and
// returns the Store.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	opt, err := ch.ParseDSN(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("clickhouse url: %w", err)
	}
	if opt.Protocol != ch.Native {
		return nil, errors.New("clickhouse url: only the native protocol (clickhouse://host:9000) is supported")
	}
	db := opt.Auth.Database
	if db == "" {
		db = "jobcast"
	}
	if !identRE(db) {
		return nil, fmt.Errorf("clickhouse url: database name %q is not a plain identifier", db)
	}
	// Create the database from the server's default one, then connect to
	// it, so that unqualified table names resolve in it.
	boot := *opt
	boot.Auth.Database = ""
	conn, err := ch.Open(&boot)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse: %w", err)
	}
	err = conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db)
	conn.Close()
	if err != nil {
		return nil, fmt.Errorf("create database %s: %w", db, err)
	}
	opt.Auth.Database = db
	if conn, err = ch.Open(opt); err != nil {
		return nil, fmt.Errorf("open clickhouse: %w", err)
	}
	s := &Store{conn: conn, db: db, log: cfg.Log}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.init(ctx, cfg.Retention); err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init(ctx context.Context, retention time.Duration) error {
	ttl := ""
	if retention > 0 {
		v, err := s.conn.ServerVersion()
		if err != nil {
			return fmt.Errorf("clickhouse version: %w", err)
		}
		if v.Version.Major > 19 || (v.Version.Major == 19 && v.Version.Minor >= 6) {
			days := int64((retention + 24*time.Hour - 1) / (24 * time.Hour))
			ttl = "\nTTL toDateTime(toUInt32(ts)) + INTERVAL " + strconv.FormatInt(days, 10) + " DAY"
		}
	}
	if err := s.conn.Exec(ctx, fmt.Sprintf(schema, s.db, ttl)); err != nil {
		return fmt.Errorf("create events table: %w", err)
	}
	return nil
}

func identRE(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}

// Dialect implements jobcast.TelemetryStore.
func (s *Store) Dialect() string { return "clickhouse" }

// Close implements jobcast.TelemetryStore.
func (s *Store) Close() error { return s.conn.Close() }

// MaxBatchSize implements telemetry.BatchSizer: MaxBatchSize.
func (s *Store) MaxBatchSize() int { return MaxBatchSize }

// Rollup implements jobcast.TelemetryStore: the ClickHouse store keeps no
// rollups (the metrics library reads raw events), so there is nothing to
// build.
func (s *Store) Rollup(context.Context, time.Time) (int, error) { return 0, nil }

// tsValue is t as the ts column holds it.
func tsValue(t time.Time) decimal.Decimal { return decimal.New(t.UnixMilli(), -3) }

// tsLiteral is t as a Decimal64(3) SQL literal.
func tsLiteral(t time.Time) string {
	return "toDecimal64('" + tsValue(t).StringFixed(3) + "', 3)"
}

// Write implements jobcast.TelemetryStore: one INSERT block per call, which
// ClickHouse commits atomically as one part.
//
// Once the block has reached the server it is sorted and written as a
// part whether or not the client waits for the answer, so Write honours
// ctx's deadline until it sends the batch and then waits up to CommitWait
// more for the answer: a Write that failed has then, but for a server
// silent for CommitWait, not been written, and the recorder's retry
// writes it once. ClickHouse deduplicates retried inserts only into
// Replicated tables (18.16's plain MergeTree has no insert deduplication),
// so a retry after a Write that gave up past CommitWait may duplicate the
// batch (docs/cluster.md).
func (s *Store) Write(ctx context.Context, events []jobcast.Event) error {
	if len(events) == 0 {
		return nil
	}
	ictx, cancel := insertContext(ctx)
	defer cancel()
	// Until the batch is sent, ctx's end ends the insert.
	detach := context.AfterFunc(ctx, cancel)
	defer detach()
	batch, err := s.conn.PrepareBatch(ictx, "INSERT INTO "+s.db+".events ("+strings.Join(columns, ", ")+")")
	if err != nil {
		return fmt.Errorf("prepare insert: %w", err)
	}
	defer batch.Abort() //nolint:errcheck // a no-op after Send
	// Column by column: appending rows goes through reflection for every
	// value, several times slower.
	n := len(events)
	ts := make([]decimal.Decimal, n)
	retryable := make([]uint8, n)
	si := make([]int64, n)
	strs := make([][]string, len(stringCols))
	for i := range strs {
		strs[i] = make([]string, n)
	}
	ints := make([][]int64, len(intCols))
	for i := range ints {
		ints[i] = make([]int64, n)
	}
	rtt := make([]float64, n)
	for i := range events {
		e := &events[i]
		ts[i] = tsValue(e.TS)
		if e.Retryable {
			retryable[i] = 1
		}
		si[i] = e.SampleInterval
		if si[i] == 0 {
			si[i] = 1
		}
		for j, f := range stringCols {
			strs[j][i] = f.get(e)
		}
		for j, f := range intCols {
			ints[j][i] = f.get(e)
		}
		rtt[i] = e.RTTMs
	}
	appendCol := func(name string, v any) error {
		if err := batch.Column(colIndex[name]).Append(v); err != nil {
			return fmt.Errorf("append %s: %w", name, err)
		}
		return nil
	}
	if err := appendCol("ts", ts); err != nil {
		return err
	}
	if err := appendCol("retryable", retryable); err != nil {
		return err
	}
	if err := appendCol("sample_interval", si); err != nil {
		return err
	}
	if err := appendCol("rtt_ms", rtt); err != nil {
		return err
	}
	for j, f := range stringCols {
		if err := appendCol(f.name, strs[j]); err != nil {
			return err
		}
	}
	for j, f := range intCols {
		if err := appendCol(f.name, ints[j]); err != nil {
			return err
		}
	}
	// Until now ctx's end aborts the insert, which leaves nothing on the
	// server (Abort closes the connection, and the server drops an insert
	// whose data it has not received). From here it waits for the answer
	// (CommitWait).
	if !detach() {
		return fmt.Errorf("insert %d events: %w", len(events), ctx.Err())
	}
	if err := batch.Send(); err != nil {
		// Not silent: the batch may be in the table, and a retry may
		// write it twice.
		s.log.Warn("clickhouse insert failed after its batch was sent: the server may have written it, and a retry then duplicates it",
			"events", len(events), "err", err)
		return fmt.Errorf("insert %d events (the server may have written them): %w", len(events), err)
	}
	return nil
}

// CommitWait is how long a Write waits for the server's answer past its
// caller's deadline once the batch has been sent: from then on the server
// writes the batch whether or not anyone waits (measured on 18.16: a
// 65,536-event insert given up 1.2 s in was in the table 1.5 s later), so
// giving up would only turn a batch written into one the recorder writes
// again.
const CommitWait = time.Minute

// insertContext is the context an insert runs in: ctx's values, and a
// deadline CommitWait past ctx's, which the server applies too:
// receive_timeout and send_timeout (default 300 s) bound how long it keeps
// an insert whose client stalls mid-insert (checked on 18.16: with
// receive_timeout=3 a stalled insert ended after 3 s, "Timeout exceeded
// while receiving data from client"; without, it was still running 7 s
// in). Integer settings only, as 18.16 takes them. Write ties the context
// to ctx until the batch is sent.
func insertContext(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(context.WithoutCancel(ctx))
	}
	ictx, cancel := context.WithDeadline(context.WithoutCancel(ctx), dl.Add(CommitWait))
	secs := max(int(math.Ceil(time.Until(dl.Add(CommitWait)).Seconds())), 1)
	return ch.Context(ictx, ch.WithSettings(ch.Settings{
		"max_execution_time": secs,
		"receive_timeout":    secs,
		"send_timeout":       secs,
	})), cancel
}

// DeleteBefore implements jobcast.TelemetryStore. The count is taken just
// before deleting, so events written meanwhile may be deleted uncounted.
func (s *Store) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	lit := tsLiteral(t)
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+s.db+".events WHERE ts < "+lit).Scan(&n); err != nil {
		return 0, fmt.Errorf("count expired events: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	// Whole days before t's day: drop their partitions, which is cheap.
	day := t.UnixMilli() / 86_400_000
	if t.UnixMilli() < 0 {
		day = 0
	}
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = ? AND table = 'events' AND active", s.db)
	if err != nil {
		return 0, fmt.Errorf("list partitions: %w", err)
	}
	var drop []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return 0, fmt.Errorf("list partitions: %w", err)
		}
		if d, err := strconv.ParseInt(p, 10, 64); err == nil && d < day {
			drop = append(drop, p)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("list partitions: %w", err)
	}
	for _, p := range drop {
		if err := s.conn.Exec(ctx, "ALTER TABLE "+s.db+".events DROP PARTITION "+p); err != nil {
			return 0, fmt.Errorf("drop partition %s: %w", p, err)
		}
	}
	// The rest of t's day: a mutation, which runs in the background.
	var left uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+s.db+".events WHERE ts < "+lit).Scan(&left); err != nil {
		return 0, fmt.Errorf("count expired events: %w", err)
	}
	if left > 0 {
		if err := s.conn.Exec(ctx, "ALTER TABLE "+s.db+".events DELETE WHERE ts < "+lit); err != nil {
			return 0, fmt.Errorf("delete expired events: %w", err)
		}
		if err := s.waitMutations(ctx); err != nil {
			return 0, err
		}
	}
	return int64(n), nil
}

// waitMutations waits until the events table has no mutation left to do.
func (s *Store) waitMutations(ctx context.Context) error {
	wait := time.Millisecond
	for {
		var pending uint64
		err := s.conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND table = 'events' AND is_done = 0", s.db).Scan(&pending)
		if err != nil {
			return fmt.Errorf("wait for delete: %w", err)
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for delete: %w", ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}
