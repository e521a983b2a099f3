package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/jobcast/jobcast"
)

var _ jobcast.TelemetryStore = (*Store)(nil)

// Defaults of Options.
const (
	DefaultMemoryLimit         = "1GB"
	DefaultCheckpointThreshold = "64MB"
	DefaultWriters             = 2
)

// Options configure a Store. The zero value is valid.
type Options struct {
	// MemoryLimit caps the memory of DuckDB's buffer manager, for all
	// queries together, in DuckDB's size syntax ("1GB", "512MiB"). Empty
	// means DefaultMemoryLimit. A query that needs more fails; it does not
	// take the node down.
	MemoryLimit string
	// Threads is the number of DuckDB worker threads; 0 means one per CPU.
	Threads int
	// CheckpointThreshold is the WAL size at which DuckDB checkpoints:
	// compresses the rows the WAL holds into the database file. The Write
	// that crosses it waits for the checkpoint. Empty means
	// DefaultCheckpointThreshold, four times DuckDB's own default: each
	// checkpoint recompresses the partly filled last row group, so at 16MB
	// sustained ingestion was about half as fast and the file larger (see
	// docs/benchmarks.md). A larger WAL takes more memory and longer to
	// replay after a crash.
	CheckpointThreshold string
	// Writers is the number of writer connections, each with its own
	// appenders, on which that many Writes run at once (default
	// DefaultWriters). One Write alternates between Go (a cgo call per
	// value into the appender) and DuckDB's append and commit, keeping
	// about one core busy; two overlap them (docs/benchmarks.md).
	Writers int
}

func (o *Options) validate() error {
	if o.MemoryLimit == "" {
		o.MemoryLimit = DefaultMemoryLimit
	}
	if o.CheckpointThreshold == "" {
		o.CheckpointThreshold = DefaultCheckpointThreshold
	}
	if o.Writers == 0 {
		o.Writers = DefaultWriters
	}
	if o.Writers < 0 {
		return fmt.Errorf("duckdb: Writers must be >= 0, got %d", o.Writers)
	}
	if o.Threads < 0 {
		return fmt.Errorf("duckdb: Threads must be >= 0, got %d", o.Threads)
	}
	return nil
}

// Store is the embedded telemetry store. Its methods are safe for concurrent
// use; up to Options.Writers Writes run at once, each on a writer
// connection of its own and as a transaction of its own.
type Store struct {
	path      string
	connector *duckdb.Connector
	db        *sql.DB // queries; closes connector

	// rmu serializes rollup builds and pruneJobIDs (see rollup_job_ids).
	// A build takes wmu inside it; nothing holding wmu takes rmu.
	rmu sync.Mutex

	// wmu is read-locked by each Write for its whole length and locked by
	// whatever must not overlap one: DeleteBefore, Close, a rollup build's
	// start and publication. It guards the fields below; a Write changes
	// rolled and buildDirty under smu too.
	wmu      sync.RWMutex
	writers  []*writer      // every writer connection
	free     chan *writer   // the writers no Write is using
	perm     []int          // perm[i] is the index in columns of the table's column i
	slimCols []int          // indexes in columns of slimColumns
	rolled   map[int64]bool // days (µs, UTC midnight) in rollup_days
	building int64          // the day Rollup is building, or noDay
	// buildDirty is set when a Write or DeleteBefore touches building.
	buildDirty bool
	closed     bool

	// smu guards rolled and buildDirty between Writes holding wmu's read
	// lock; lmu serializes the Writes that drop a day's rollups, which
	// would conflict on rollup_state.
	smu, lmu sync.Mutex

	// beforePublish, when set (by tests), runs between a day's build and
	// its publication in rollup_days.
	beforePublish func(day int64)
}

// column is one column of events: its DuckDB type, the value it gets when a
// migration adds it to an existing table, and how to read it from an Event.
type column struct {
	name, typ, zero string
	get             func(e *jobcast.Event) driver.Value
	// str reads a VARCHAR column without boxing it, so that Write can reuse
	// the boxed value of the previous row when it is the same.
	str func(e *jobcast.Event) string
}

// columns of events, in the order a new table gets them. Adding one here
// adds it to existing tables on Open (at their end, with its zero value).
var columns = []column{
	{"ts", "TIMESTAMP", "'epoch'::TIMESTAMP", func(e *jobcast.Event) driver.Value { return e.TS }, nil},
	{"event", "VARCHAR", "''", func(e *jobcast.Event) driver.Value { return e.Event }, func(e *jobcast.Event) string { return e.Event }},
	{"node", "VARCHAR", "''", func(e *jobcast.Event) driver.Value { return e.Node }, func(e *jobcast.Event) string { return e.Node }},
	{"job_id", "VARCHAR", "''", func(e *jobcast.Event) driver.Value { return e.JobID }, func(e *jobcast.Event) string { return e.JobID }},
	{"pipeline", "VARCHAR", "''", func(e *jobcast.Event) driver.Value { return e.Pipeline }, func(e *jobcast.Event) string { return e.Pipeline }},
	{"conn_id", "VARCHAR", "''", func(e *jobcast.Event) driver.Value { return e.ConnID }, func(e *jobcast.Event) string { return e.ConnID }},
	{"app_version", "VARCHAR", "''", func(e *jobcast.Event) driver.Value { return e.AppVersion }, func(e *jobcast.Event) string { return e.AppVersion }},
	{"os_version", "VARCHAR", "''", func(e *jobcast.Event) driver.Value { return e.OSVersion }, func(e *jobcast.Event) string { return e.OSVersion }},
	{"network_type", "VARCHAR", "''", func(e *jobcast.Event) driver.Value { return e.NetworkType }, func(e *jobcast.Event) string { return e.NetworkType }},
	{"device_model", "VARCHAR", "''", func(e *jobcast.Event) driver.Value { return e.DeviceModel }, func(e *jobcast.Event) string { return e.DeviceModel }},
	{"error_code", "VARCHAR", "''", func(e *jobcast.Event) driver.Value { return e.ErrorCode }, func(e *jobcast.Event) string { return e.ErrorCode }},
	{"provider", "VARCHAR", "''", func(e *jobcast.Event) driver.Value { return e.Provider }, func(e *jobcast.Event) string { return e.Provider }},
	{"retryable", "BOOLEAN", "false", func(e *jobcast.Event) driver.Value { return e.Retryable }, nil},
	{"reason", "VARCHAR", "''", func(e *jobcast.Event) driver.Value { return e.Reason }, func(e *jobcast.Event) string { return e.Reason }},
	{"close_code", "INTEGER", "0", func(e *jobcast.Event) driver.Value { return int32(e.CloseCode) }, nil},
	{"rtt_ms", "DOUBLE", "0", func(e *jobcast.Event) driver.Value { return e.RTTMs }, nil},
	{"duration_ms", "BIGINT", "0", func(e *jobcast.Event) driver.Value { return e.DurationMs }, nil},
	{"messages_sent", "BIGINT", "0", func(e *jobcast.Event) driver.Value { return e.MessagesSent }, nil},
	{"bytes_sent", "BIGINT", "0", func(e *jobcast.Event) driver.Value { return e.BytesSent }, nil},
	{"messages_received", "BIGINT", "0", func(e *jobcast.Event) driver.Value { return e.MessagesReceived }, nil},
	{"progress_sent", "BIGINT", "0", func(e *jobcast.Event) driver.Value { return e.ProgressSent }, nil},
	{"reconnect_count", "BIGINT", "0", func(e *jobcast.Event) driver.Value { return e.ReconnectCount }, nil},
	{"success_count", "BIGINT", "0", func(e *jobcast.Event) driver.Value { return e.SuccessCount }, nil},
	{"failure_count", "BIGINT", "0", func(e *jobcast.Event) driver.Value { return e.FailureCount }, nil},
	{"total_count", "BIGINT", "0", func(e *jobcast.Event) driver.Value { return e.TotalCount }, nil},
	{"throttled_count", "BIGINT", "0", func(e *jobcast.Event) driver.Value { return e.ThrottledCount }, nil},
	{"experiment_id", "VARCHAR", "''", func(e *jobcast.Event) driver.Value { return e.ExperimentID }, func(e *jobcast.Event) string { return e.ExperimentID }},
	{"variant", "VARCHAR", "''", func(e *jobcast.Event) driver.Value { return e.Variant }, func(e *jobcast.Event) string { return e.Variant }},
	{"param", "VARCHAR", "''", func(e *jobcast.Event) driver.Value { return e.Param }, func(e *jobcast.Event) string { return e.Param }},
	{"value", "VARCHAR", "''", func(e *jobcast.Event) driver.Value { return e.Value }, func(e *jobcast.Event) string { return e.Value }},
	{"sample_interval", "INTEGER", "1", func(e *jobcast.Event) driver.Value {
		if e.SampleInterval <= 0 {
			return int32(1)
		}
		return int32(min(e.SampleInterval, 1<<31-1))
	}, nil},
}

// sandbox are the settings every Store's database is opened with, and the
// values Open checks they have. lock_configuration comes last in the check
// but DuckDB applies startup settings before any SQL runs, so the order in
// which the driver applies them does not matter.
var sandbox = [][2]string{
	{"enable_external_access", "false"},
	{"autoload_known_extensions", "false"},
	{"autoinstall_known_extensions", "false"},
	{"allow_community_extensions", "false"},
	{"allow_unsigned_extensions", "false"},
	{"lock_configuration", "true"},
}

// Open opens (creating if needed) the DuckDB file at path and creates or
// migrates the events table.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	// The driver splits its DSN at the first '?' and parses it as a URL, so
	// a '#' would silently drop the settings that follow it.
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("duckdb: path %q must be non-empty and contain neither '?' nor '#'", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
	}
	q := url.Values{}
	for _, kv := range sandbox {
		q.Set(kv[0], kv[1])
	}
	q.Set("memory_limit", opts.MemoryLimit)
	q.Set("checkpoint_threshold", opts.CheckpointThreshold)
	if opts.Threads > 0 {
		q.Set("threads", strconv.Itoa(opts.Threads))
	}
	connector, err := duckdb.NewConnector(path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &Store{path: path, connector: connector, db: sql.OpenDB(connector), building: noDay}
	if err := s.init(ctx, opts.Writers); err != nil {
		s.db.Close() // closes connector
		return nil, err
	}
	return s, nil
}

func (s *Store) init(ctx context.Context, writers int) error {
	if err := s.checkSandbox(ctx); err != nil {
		return err
	}
	if err := s.migrate(ctx); err != nil {
		return err
	}
	for _, stmt := range rollupSchema {
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create rollups: %w", err)
		}
	}
	if err := s.migrateRollups(ctx); err != nil {
		return err
	}
	if err := s.loadRolled(ctx); err != nil {
		return err
	}
	s.free = make(chan *writer, writers)
	for range writers {
		conn, err := s.connector.Connect(ctx)
		if err != nil {
			s.closeWriters()
			return fmt.Errorf("open %s: writer connection: %w", s.path, err)
		}
		w := &writer{s: s, conn: conn}
		s.writers = append(s.writers, w)
		s.free <- w
		if err := w.newAppenders(); err != nil {
			s.closeWriters()
			return err
		}
	}
	return nil
}

// Writers reports how many Writes the store runs at once (Options.Writers),
// for the recorder to run as many writers.
func (s *Store) Writers() int { return len(s.writers) }

// closeWriters closes every writer's appenders and connection.
func (s *Store) closeWriters() error {
	var errs []error
	for _, w := range s.writers {
		if err := w.closeAppenders(false); err != nil {
			errs = append(errs, fmt.Errorf("close appenders: %w", err))
		}
		if err := w.conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close writer connection: %w", err))
		}
	}
	return errors.Join(errs...)
}

// checkSandbox reads back the settings Open asked for: if the driver ever
// dropped one, opening must fail rather than serve SQL without a sandbox.
func (s *Store) checkSandbox(ctx context.Context) error {
	for _, kv := range sandbox {
		var v string
		if err := s.db.QueryRowContext(ctx, `SELECT current_setting(?)::VARCHAR`, kv[0]).Scan(&v); err != nil {
			return fmt.Errorf("open %s: read setting %s: %w", s.path, kv[0], err)
		}
		if v != kv[1] {
			return fmt.Errorf("open %s: setting %s is %s, want %s", s.path, kv[0], v, kv[1])
		}
	}
	return nil
}

// migrate creates events or adds the columns an older table lacks, and
// records in s.perm the order of the table's columns.
func (s *Store) migrate(ctx context.Context) error {
	defs := make([]string, len(columns))
	for i, c := range columns {
		defs[i] = c.name + " " + c.typ
	}
	if _, err := s.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS events (\n\t"+strings.Join(defs, ",\n\t")+"\n)"); err != nil {
		return fmt.Errorf("create events: %w", err)
	}
	have, err := s.tableColumns(ctx)
	if err != nil {
		return err
	}
	index := make(map[string]int, len(columns))
	for i, c := range columns {
		index[c.name] = i
	}
	seen := make(map[string]bool, len(have))
	for _, h := range have {
		i, ok := index[h[0]]
		if !ok {
			return fmt.Errorf("events in %s has a column %s that this jobcast does not know: written by a newer version?", s.path, h[0])
		}
		if h[1] != columns[i].typ {
			return fmt.Errorf("events in %s: column %s is %s, want %s", s.path, h[0], h[1], columns[i].typ)
		}
		seen[h[0]] = true
	}
	for _, c := range columns {
		if seen[c.name] {
			continue
		}
		if _, err := s.db.ExecContext(ctx, fmt.Sprintf("ALTER TABLE events ADD COLUMN %s %s DEFAULT %s", c.name, c.typ, c.zero)); err != nil {
			return fmt.Errorf("migrate events: add %s: %w", c.name, err)
		}
	}
	if have, err = s.tableColumns(ctx); err != nil {
		return err
	}
	s.perm = make([]int, len(have))
	for i, h := range have {
		s.perm[i] = index[h[0]]
	}
	// The slim appender leaves the other columns to their defaults: every
	// column's must be its zero. CREATE TABLE above sets none (a column
	// with a default would differ from the tables created before it);
	// this sets them once.
	for i, h := range have {
		c := columns[s.perm[i]]
		if h[2] != "" { // DuckDB writes it its own way: '0', CAST('f' AS BOOLEAN)
			continue
		}
		if _, err := s.db.ExecContext(ctx, fmt.Sprintf("ALTER TABLE events ALTER COLUMN %s SET DEFAULT %s", c.name, c.zero)); err != nil {
			return fmt.Errorf("migrate events: default of %s: %w", c.name, err)
		}
	}
	s.slimCols = make([]int, len(slimColumns))
	for i, n := range slimColumns {
		s.slimCols[i] = index[n]
	}
	return nil
}

// tableColumns returns events' columns as (name, type, default) in table
// order.
func (s *Store) tableColumns(ctx context.Context) ([][3]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT column_name, data_type, coalesce(column_default, '') FROM duckdb_columns()
		WHERE database_name = current_database() AND schema_name = 'main' AND table_name = 'events'
		ORDER BY column_index`)
	if err != nil {
		return nil, fmt.Errorf("read events columns: %w", err)
	}
	defer rows.Close()
	var cols [][3]string
	for rows.Next() {
		var c [3]string
		if err := rows.Scan(&c[0], &c[1], &c[2]); err != nil {
			return nil, fmt.Errorf("read events columns: %w", err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events columns: %w", err)
	}
	return cols, nil
}

// Dialect implements jobcast.TelemetryStore.
func (s *Store) Dialect() string { return "duckdb" }

// DeleteBefore deletes events with ts before t and, in the same
// transaction, the rollups of the days it empties and of the day it cuts
// (Rollup rebuilds that one), then checkpoints so that the freed blocks can
// be reused (DuckDB reuses free blocks inside the file and truncates the file
// only when the free blocks are at its end). It runs on the writer
// first writer connection, between Writes.
func (s *Store) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	n, err := s.deleteBefore(ctx, t)
	if err != nil || n == 0 {
		return n, err
	}
	if err := s.pruneJobIDs(ctx); err != nil {
		return n, err
	}
	if _, err := s.db.ExecContext(ctx, `CHECKPOINT`); err != nil {
		return n, fmt.Errorf("checkpoint after delete: %w", err)
	}
	return n, nil
}

func (s *Store) deleteBefore(ctx context.Context, t time.Time) (int64, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return 0, errClosed
	}
	us := t.UnixMicro()
	var drop []int64
	for d := range s.rolled {
		if d < us {
			drop = append(drop, d)
		}
	}
	if s.building != noDay && s.building < us {
		s.buildDirty = true
	}
	// No Write holds a writer while wmu is locked.
	w := s.writers[0]
	if err := w.exec(ctx, "BEGIN TRANSACTION"); err != nil {
		w.exec(context.Background(), "ROLLBACK")
		return 0, fmt.Errorf("delete events: begin: %w", err)
	}
	res, err := w.conn.(driver.ExecerContext).ExecContext(ctx, `DELETE FROM events WHERE ts < make_timestamp($1)`,
		[]driver.NamedValue{{Ordinal: 1, Value: us}})
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err == nil {
		// Every rollup row of the days before t's, rolled up or left by
		// an abandoned build; and the rollups of t's day if t cuts it.
		for _, tbl := range rollupTables {
			if err = w.execArgs(ctx, "DELETE FROM "+tbl+" WHERE day < make_timestamp($1)",
				[]driver.NamedValue{{Ordinal: 1, Value: dayOf(t)}}); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = w.dropDays(ctx, drop)
	}
	if err == nil {
		err = w.exec(context.Background(), "COMMIT")
	}
	if err != nil {
		w.exec(context.Background(), "ROLLBACK")
		return 0, fmt.Errorf("delete events: %w", err)
	}
	for _, d := range drop {
		delete(s.rolled, d)
	}
	return n, nil
}

// Close flushes what was written, checkpoints and closes the database. It
// is idempotent.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	errs := []error{s.closeWriters()}
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close %s: %w", s.path, err))
	}
	return errors.Join(errs...)
}
