package duckdb

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
)

// A Write of an event of the day being built, landing after the build read
// the day, keeps the build from being published: the day stays without
// rollups (so metrics read its events, the late one included) until the
// next Rollup builds it again. DeleteBefore cutting into it does the same.
func TestRollupBuildRacingAWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		touch func(s *Store) error
	}{
		{"late write", func(s *Store) error {
			return s.Write(ctx, []jobcast.Event{{TS: day.Add(time.Hour), Event: jobcast.EventHeartbeat, JobID: "late", RTTMs: 9}})
		}},
		{"retention", func(s *Store) error {
			_, err := s.DeleteBefore(ctx, day.Add(30*time.Minute))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Open(ctx, filepath.Join(t.TempDir(), "t.duckdb"), Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Write(ctx, []jobcast.Event{
				{TS: day.Add(10 * time.Minute), Event: jobcast.EventConnected, JobID: "j1"},
				{TS: day.Add(2 * time.Hour), Event: jobcast.EventHeartbeat, JobID: "j1", RTTMs: 20},
			}); err != nil {
				t.Fatal(err)
			}
			var touchErr error
			s.beforePublish = func(int64) {
				s.beforePublish = nil
				touchErr = tt.touch(s)
			}
			if n, err := s.Rollup(ctx, day.Add(24*time.Hour)); err != nil || n != 0 {
				t.Fatalf("Rollup racing a %s = %d, %v; want 0 days, nil", tt.name, n, err)
			}
			if touchErr != nil {
				t.Fatal(touchErr)
			}
			if got := rollupDayCount(t, s); got != 0 {
				t.Fatalf("rollup_days has %d rows after the abandoned build, want 0", got)
			}
			if n, err := s.Rollup(ctx, day.Add(24*time.Hour)); err != nil || n != 1 {
				t.Fatalf("Rollup again = %d, %v; want 1 day", n, err)
			}
			// The rebuilt day holds exactly the day's events now.
			var hb, events int64
			if err := s.db.QueryRowContext(ctx, `SELECT
				(SELECT coalesce(sum(w), 0) FROM rollup_rtt),
				(SELECT count(*) FROM events WHERE event = 'heartbeat')`).Scan(&hb, &events); err != nil {
				t.Fatal(err)
			}
			if hb != events {
				t.Errorf("rollup_rtt weighs %d heartbeats, events hold %d", hb, events)
			}
		})
	}
}

func rollupDayCount(t *testing.T, s *Store) int64 {
	t.Helper()
	var n int64
	if err := s.db.QueryRowContext(context.Background(), "SELECT count(*) FROM rollup_days").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Rollups built by another rollupVersion are dropped on Open, and the next
// Rollup builds them again; the events stay.
func TestRollupVersionChangeRebuilds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "t.duckdb")
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	s, err := Open(ctx, path, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, []jobcast.Event{{TS: day.Add(time.Hour), Event: jobcast.EventConnected, JobID: "j1"}}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Rollup(ctx, day.Add(24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("Rollup = %d, %v; want 1", n, err)
	}
	if _, err := s.db.ExecContext(ctx, "UPDATE rollup_state SET version = ?", rollupVersion+1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(ctx, path, Options{Threads: 1}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := rollupDayCount(t, s); got != 0 {
		t.Fatalf("rollup_days has %d rows after a version change, want 0", got)
	}
	var events, rows int64
	if err := s.db.QueryRowContext(ctx, "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM rollup_events)").Scan(&events, &rows); err != nil {
		t.Fatal(err)
	}
	if events != 1 || rows != 0 {
		t.Fatalf("%d events and %d rollup_events rows, want 1 and 0", events, rows)
	}
	if n, err := s.Rollup(ctx, day.Add(24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("Rollup after the version change = %d, %v; want 1", n, err)
	}
}

// A job seen on several built days has one job_key in all of them (and in
// rollup_job_ids), new jobs get keys after the largest one, the days keep
// their key range, and retention removes the keys no day refers to any
// more while keeping the others.
func TestRollupJobKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	s, err := Open(ctx, filepath.Join(t.TempDir(), "t.duckdb"), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev := func(d int, job string) jobcast.Event {
		return jobcast.Event{TS: day.Add(time.Duration(d)*24*time.Hour + time.Hour), Event: jobcast.EventConnected, JobID: job, SampleInterval: 1}
	}
	if err := s.Write(ctx, []jobcast.Event{ev(0, "a"), ev(0, "b"), ev(1, "b"), ev(1, "c"), ev(2, "c")}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Rollup(ctx, day.Add(3*24*time.Hour)); err != nil || n != 3 {
		t.Fatalf("Rollup = %d, %v; want 3 days", n, err)
	}
	keys := func() string {
		t.Helper()
		rows, err := s.Query(ctx, `SELECT strftime(r.day, '%d') || ':' || i.job_id || '=' || r.job_key
			FROM rollup_jobs AS r JOIN rollup_job_ids AS i USING (job_key) ORDER BY r.day, i.job_id`)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM rollup_job_ids").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(n, rows.Rows)
	}
	if got, want := keys(), "3 [[02:a=1] [02:b=2] [03:b=2] [03:c=3] [04:c=3]]"; got != want {
		t.Errorf("job keys %s, want %s", got, want)
	}
	var lo, hi int64
	if err := s.db.QueryRowContext(ctx, "SELECT lo_key, hi_key FROM rollup_days WHERE day = make_timestamp(?)",
		day.Add(24*time.Hour).UnixMicro()).Scan(&lo, &hi); err != nil || lo != 2 || hi != 3 {
		t.Errorf("the 3rd's key range %d…%d (%v), want 2…3", lo, hi, err)
	}
	if _, err := s.DeleteBefore(ctx, day.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(), "2 [[03:b=2] [03:c=3] [04:c=3]]"; got != want {
		t.Errorf("after retention job keys %s, want %s", got, want)
	}
}
