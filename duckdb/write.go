package duckdb

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/jobcast/jobcast"
)

var errClosed = errors.New("duckdb: store is closed")

// appender appends rows of some of events' columns: all of them, or the
// slim set.
type appender struct {
	app  *duckdb.Appender
	cols []int          // cols[i] is the index in columns of the row's value i
	row  []driver.Value // reused by Write
	prev []string       // the strings boxed in row, for its VARCHAR columns
}

// slimColumns are the columns of most events: heartbeats, connects. An
// event whose other fields are all zero goes through an appender of these
// only, and DuckDB fills the other 18 with their defaults (the zero
// values) in C, where the full appender would make a cgo call per value:
// 13 instead of 31 values, 9 instead of 14 string cgo calls (+1 to +17 %
// in paired runs under load, docs/benchmarks.md).
var slimColumns = []string{"ts", "event", "node", "job_id", "pipeline", "conn_id", "app_version", "os_version",
	"network_type", "device_model", "rtt_ms", "reconnect_count", "sample_interval"}

// slim reports whether every field of e outside slimColumns is zero.
func slim(e *jobcast.Event) bool {
	return e.ErrorCode == "" && e.Provider == "" && !e.Retryable && e.Reason == "" && e.CloseCode == 0 &&
		e.DurationMs == 0 && e.MessagesSent == 0 && e.BytesSent == 0 && e.MessagesReceived == 0 &&
		e.ProgressSent == 0 && e.SuccessCount == 0 && e.FailureCount == 0 && e.TotalCount == 0 &&
		e.ThrottledCount == 0 && e.ExperimentID == "" && e.Variant == "" && e.Param == "" && e.Value == ""
}

func (s *Store) newAppenders() error {
	full, err := duckdb.NewAppenderFromConn(s.wconn, "main", "events")
	if err != nil {
		return fmt.Errorf("open %s: appender on events: %w", s.path, err)
	}
	names := make([]string, len(s.slimCols))
	for i, c := range s.slimCols {
		names[i] = columns[c].name
	}
	thin, err := duckdb.NewAppenderWithColumns(s.wconn, "", "main", "events", names)
	if err != nil {
		full.Close()
		return fmt.Errorf("open %s: slim appender on events: %w", s.path, err)
	}
	s.full = &appender{app: full, cols: s.perm, row: make([]driver.Value, len(s.perm)), prev: make([]string, len(s.perm))}
	s.slim = &appender{app: thin, cols: s.slimCols, row: make([]driver.Value, len(s.slimCols)), prev: make([]string, len(s.slimCols))}
	return nil
}

// Write implements jobcast.TelemetryStore. The batch is one transaction:
// when Write returns nil all of it is committed to DuckDB's WAL, otherwise
// none of it is. A batch of at least a row group (122,880 events, what the
// recorder takes from a backlog) DuckDB compresses into the database file
// as it is appended and logs in the WAL as block pointers at the commit,
// which costs about 40 % less CPU per event than rows in the WAL compressed
// at a checkpoint; TestCrashSafety kills Writes of both kinds.
func (s *Store) Write(ctx context.Context, events []jobcast.Event) error {
	if len(events) == 0 {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.full == nil {
		// A failed flush invalidated the previous ones.
		if err := s.newAppenders(); err != nil {
			return err
		}
	}
	if err := s.exec(ctx, "BEGIN TRANSACTION"); err != nil {
		// The context may have ended after BEGIN ran.
		s.exec(context.Background(), "ROLLBACK")
		return fmt.Errorf("write events: begin: %w", err)
	}
	if err := s.appendAll(ctx, events); err != nil {
		s.abort()
		return fmt.Errorf("write %d events: %w", len(events), err)
	}
	if err := ctx.Err(); err != nil {
		s.abort()
		return fmt.Errorf("write %d events: %w", len(events), err)
	}
	// Events of a day already rolled up (late, or out of order) make its
	// rollups stale: drop them with the events' commit.
	late := s.lateDays(events)
	if err := s.dropDays(ctx, late); err != nil {
		s.abort()
		return fmt.Errorf("write %d events: %w", len(events), err)
	}
	// Not cancelable: duckdb-go may report a canceled context for a
	// COMMIT that took effect, and a Write that failed must leave nothing.
	if err := s.exec(context.Background(), "COMMIT"); err != nil {
		s.abort()
		return fmt.Errorf("write %d events: commit: %w", len(events), err)
	}
	for _, d := range late {
		delete(s.rolled, d)
	}
	return nil
}

func (s *Store) appendAll(ctx context.Context, events []jobcast.Event) error {
	// Drop references to the batch's strings when done.
	defer s.full.clear()
	defer s.slim.clear()
	for i := range events {
		e := &events[i]
		a := s.full
		if slim(e) {
			a = s.slim
		}
		if err := a.append(e); err != nil {
			return err
		}
	}
	if err := s.full.app.FlushWithCancel(ctx); err != nil {
		return err
	}
	return s.slim.app.FlushWithCancel(ctx)
}

func (a *appender) append(e *jobcast.Event) error {
	row, prev := a.row, a.prev
	for j, c := range a.cols {
		col := &columns[c]
		if col.str == nil {
			row[j] = col.get(e)
			continue
		}
		// Boxing a non-empty string allocates: reuse the previous row's
		// box when the value is the same (node, pipeline, versions, ...
		// repeat from row to row).
		if v := col.str(e); row[j] == nil || v != prev[j] {
			row[j], prev[j] = v, v
		}
	}
	return a.app.AppendRow(row...)
}

func (a *appender) clear() {
	clear(a.row)
	clear(a.prev)
}

// abort rolls back the open transaction and discards the appenders, which a
// failed flush leaves unusable; the next Write makes new ones.
func (s *Store) abort() {
	s.closeAppenders(true)
	s.exec(context.Background(), "ROLLBACK")
}

func (s *Store) exec(ctx context.Context, stmt string) error {
	_, err := s.wconn.(driver.ExecerContext).ExecContext(ctx, stmt, nil)
	return err
}

// closeAppenders closes the appenders, discarding their rows first when
// discard is set.
func (s *Store) closeAppenders(discard bool) error {
	var errs []error
	for _, a := range []*appender{s.full, s.slim} {
		if a == nil {
			continue
		}
		if discard {
			a.app.Clear()
		}
		if err := a.app.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.full, s.slim = nil, nil
	return errors.Join(errs...)
}
