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

func (s *Store) newAppender() error {
	app, err := duckdb.NewAppenderFromConn(s.wconn, "main", "events")
	if err != nil {
		return fmt.Errorf("open %s: appender on events: %w", s.path, err)
	}
	s.app = app
	return nil
}

// Write implements jobcast.TelemetryStore. The batch is one transaction:
// when Write returns nil all of it is committed to DuckDB's WAL, otherwise
// none of it is.
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
	if s.app == nil {
		// A failed flush invalidated the previous one.
		if err := s.newAppender(); err != nil {
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
	row, prev := s.row, s.prev
	// Drop references to the batch's strings when done.
	defer clear(prev)
	defer clear(row)
	for i := range events {
		e := &events[i]
		for j, c := range s.perm {
			col := &columns[c]
			if col.str == nil {
				row[j] = col.get(e)
				continue
			}
			// Boxing a non-empty string allocates: reuse the previous
			// row's box when the value is the same (node, pipeline,
			// versions, ... repeat from row to row).
			if v := col.str(e); row[j] == nil || v != prev[j] {
				row[j], prev[j] = v, v
			}
		}
		if err := s.app.AppendRow(row...); err != nil {
			return err
		}
	}
	return s.app.FlushWithCancel(ctx)
}

// abort rolls back the open transaction and discards the appender, which a
// failed flush leaves unusable; the next Write makes a new one.
func (s *Store) abort() {
	if s.app != nil {
		s.app.Clear()
		s.app.Close()
		s.app = nil
	}
	s.exec(context.Background(), "ROLLBACK")
}

func (s *Store) exec(ctx context.Context, stmt string) error {
	_, err := s.wconn.(driver.ExecerContext).ExecContext(ctx, stmt, nil)
	return err
}
