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

// writer is one writer connection and its appenders; one Write at a time
// uses it.
type writer struct {
	s    *Store
	conn driver.Conn
	full *appender // every column, in the table's order
	slim *appender // slimColumns only
}

func (w *writer) newAppenders() error {
	s := w.s
	full, err := duckdb.NewAppenderFromConn(w.conn, "main", "events")
	if err != nil {
		return fmt.Errorf("open %s: appender on events: %w", s.path, err)
	}
	names := make([]string, len(s.slimCols))
	for i, c := range s.slimCols {
		names[i] = columns[c].name
	}
	thin, err := duckdb.NewAppenderWithColumns(w.conn, "", "main", "events", names)
	if err != nil {
		full.Close()
		return fmt.Errorf("open %s: slim appender on events: %w", s.path, err)
	}
	w.full = &appender{app: full, cols: s.perm, row: make([]driver.Value, len(s.perm)), prev: make([]string, len(s.perm))}
	w.slim = &appender{app: thin, cols: s.slimCols, row: make([]driver.Value, len(s.slimCols)), prev: make([]string, len(s.slimCols))}
	return nil
}

// Write implements jobcast.TelemetryStore. The batch is one transaction:
// when Write returns nil all of it is committed to DuckDB's WAL, otherwise
// none of it is. A batch of at least a row group (122,880 events, what the
// recorder takes from a backlog) DuckDB compresses into the database file
// as it is appended and logs in the WAL as block pointers at the commit,
// which costs about 40 % less CPU per event than rows in the WAL compressed
// at a checkpoint; TestCrashSafety kills Writes of both kinds. Up to
// Options.Writers Writes run at once, each on its own connection; the rows
// of concurrent Writes interleave in the table in no particular order.
func (s *Store) Write(ctx context.Context, events []jobcast.Event) error {
	if len(events) == 0 {
		return nil
	}
	// Read-locked for the whole Write: a rollup build cannot start or
	// publish, nor DeleteBefore run, between lateDays and the commit.
	s.wmu.RLock()
	defer s.wmu.RUnlock()
	if s.closed {
		return errClosed
	}
	var w *writer
	select {
	case w = <-s.free:
	default:
		select {
		case w = <-s.free:
		case <-ctx.Done():
			err := ctx.Err()
			if err == nil { // Done and Err may disagree for a moment
				err = context.Canceled
			}
			return fmt.Errorf("write %d events: wait for a writer: %w", len(events), err)
		}
	}
	defer func() { s.free <- w }()
	if err := ctx.Err(); err != nil {
		return err
	}
	// Events of a day already rolled up (late, or out of order) make its
	// rollups stale: drop them with the events' commit.
	s.smu.Lock()
	late := s.lateDays(events)
	s.smu.Unlock()
	if len(late) > 0 {
		// Two Writes that drop rollups would conflict on rollup_state.
		s.lmu.Lock()
		defer s.lmu.Unlock()
	}
	if err := w.write(ctx, events, late); err != nil {
		return fmt.Errorf("write %d events: %w", len(events), err)
	}
	s.smu.Lock()
	for _, d := range late {
		delete(s.rolled, d)
	}
	s.smu.Unlock()
	return nil
}

// write appends events and drops the rollups of late in one transaction.
func (w *writer) write(ctx context.Context, events []jobcast.Event, late []int64) error {
	if w.full == nil {
		// A failed flush invalidated the previous ones.
		if err := w.newAppenders(); err != nil {
			return err
		}
	}
	if err := w.exec(ctx, "BEGIN TRANSACTION"); err != nil {
		// The context may have ended after BEGIN ran.
		w.exec(context.Background(), "ROLLBACK")
		return fmt.Errorf("begin: %w", err)
	}
	if err := w.appendAll(ctx, events); err != nil {
		w.abort()
		return err
	}
	if err := ctx.Err(); err != nil {
		w.abort()
		return err
	}
	if err := w.dropDays(ctx, late); err != nil {
		w.abort()
		return err
	}
	// Not cancelable: duckdb-go may report a canceled context for a
	// COMMIT that took effect, and a Write that failed must leave nothing.
	if err := w.exec(context.Background(), "COMMIT"); err != nil {
		w.abort()
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (w *writer) appendAll(ctx context.Context, events []jobcast.Event) error {
	// Drop references to the batch's strings when done.
	defer w.full.clear()
	defer w.slim.clear()
	for i := range events {
		e := &events[i]
		a := w.full
		if slim(e) {
			a = w.slim
		}
		if err := a.append(e); err != nil {
			return err
		}
	}
	if err := w.full.app.FlushWithCancel(ctx); err != nil {
		return err
	}
	return w.slim.app.FlushWithCancel(ctx)
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
func (w *writer) abort() {
	w.closeAppenders(true)
	w.exec(context.Background(), "ROLLBACK")
}

func (w *writer) exec(ctx context.Context, stmt string) error {
	_, err := w.conn.(driver.ExecerContext).ExecContext(ctx, stmt, nil)
	return err
}

// closeAppenders closes the appenders, discarding their rows first when
// discard is set.
func (w *writer) closeAppenders(discard bool) error {
	var errs []error
	for _, a := range []*appender{w.full, w.slim} {
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
	w.full, w.slim = nil, nil
	return errors.Join(errs...)
}
