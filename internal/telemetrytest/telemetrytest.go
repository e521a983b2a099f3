// Package telemetrytest is the conformance suite for jobcast.TelemetryStore:
// every implementation (DuckDB embedded, ClickHouse in a cluster) runs
// RunStoreTests from its own tests, so the metrics library and POST /v1/sql
// can rely on one contract. It imports no database driver.
package telemetrytest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

// base is the suite's reference time; millisecond-aligned because stores
// may keep times at millisecond precision.
var base = time.Date(2025, 11, 26, 5, 0, 0, 0, time.UTC)

// Columns are the columns of the events table, in SPEC §4's order plus
// close_code and progress_sent.
var Columns = []string{
	"ts", "event", "node", "job_id", "pipeline", "conn_id", "app_version", "os_version",
	"network_type", "device_model", "error_code", "provider", "retryable", "reason",
	"close_code", "rtt_ms", "duration_ms", "messages_sent", "bytes_sent", "messages_received",
	"progress_sent", "reconnect_count", "success_count", "failure_count", "total_count",
	"throttled_count", "experiment_id", "variant", "param", "value", "sample_interval",
}

// slowQueries run far longer than any test's time limit, per dialect.
var slowQueries = map[string]string{
	"duckdb":     "SELECT sum(hash(i)) AS h FROM range(10000000000000) t(i)",
	"clickhouse": "SELECT sum(cityHash64(number)) AS h FROM numbers(10000000000000)",
}

// RunStoreTests runs the conformance suite. open must return a new, empty
// store each time it is called; the suite closes it when the test that asked
// for it ends (open must not register its own Close).
func RunStoreTests(t *testing.T, open func(t *testing.T) jobcast.TelemetryStore) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s jobcast.TelemetryStore)
	}{
		{"EveryColumnRoundTrips", testEveryColumnRoundTrips},
		{"ZeroEventIsZerosNotNulls", testZeroEvent},
		{"EmptyBatch", testEmptyBatch},
		{"Counts", testCounts},
		{"SampleIntervalZeroIsOne", testSampleIntervalZeroIsOne},
		{"QueryArgsAndTypes", testQueryArgsAndTypes},
		{"DeleteBeforeBoundaries", testDeleteBefore},
		{"RollupKeepsEvents", testRollup},
		{"UntrustedSelect", testUntrustedSelect},
		{"UntrustedRefusals", testUntrustedRefusals},
		{"UntrustedRowLimit", testUntrustedRowLimit},
		{"UntrustedTimeout", testUntrustedTimeout},
		{"ConcurrentQueryWhileWrite", testConcurrentQueryWhileWrite},
		{"ConcurrentDeleteWhileWrite", testConcurrentDeleteWhileWrite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// fullEvent has every field set to a value that is not its zero value.
func fullEvent() jobcast.Event {
	return jobcast.Event{
		TS:               base.Add(1234 * time.Millisecond),
		Event:            jobcast.EventDisconnected,
		Node:             "node-a",
		JobID:            "job-1",
		Pipeline:         "csv_import",
		ConnID:           "c-42",
		AppVersion:       "3.2.1",
		OSVersion:        "iOS 18.1",
		NetworkType:      "wifi",
		DeviceModel:      "iPhone16,1",
		ErrorCode:        protocol.ErrGeminiTimeout,
		Provider:         "gemini",
		Retryable:        true,
		Reason:           "heartbeat_timeout",
		CloseCode:        protocol.CloseHeartbeatTimeout,
		RTTMs:            12.5,
		DurationMs:       61_000,
		MessagesSent:     120,
		BytesSent:        1 << 33, // beyond 32 bits
		MessagesReceived: 7,
		ProgressSent:     100,
		ReconnectCount:   2,
		SuccessCount:     480,
		FailureCount:     20,
		TotalCount:       500,
		ThrottledCount:   31,
		ExperimentID:     "exp-throttle",
		Variant:          "b",
		Param:            "throttle_ms",
		Value:            "250",
		SampleInterval:   10,
	}
}

// want returns e's row as a store must answer it: normalized types,
// sample_interval 0 read as 1.
func want(e jobcast.Event) map[string]any {
	si := e.SampleInterval
	if si == 0 {
		si = 1
	}
	return map[string]any{
		"ts": e.TS, "event": e.Event, "node": e.Node, "job_id": e.JobID, "pipeline": e.Pipeline,
		"conn_id": e.ConnID, "app_version": e.AppVersion, "os_version": e.OSVersion,
		"network_type": e.NetworkType, "device_model": e.DeviceModel, "error_code": e.ErrorCode,
		"provider": e.Provider, "retryable": e.Retryable, "reason": e.Reason,
		"close_code": int64(e.CloseCode), "rtt_ms": e.RTTMs, "duration_ms": e.DurationMs,
		"messages_sent": e.MessagesSent, "bytes_sent": e.BytesSent,
		"messages_received": e.MessagesReceived, "progress_sent": e.ProgressSent,
		"reconnect_count": e.ReconnectCount, "success_count": e.SuccessCount,
		"failure_count": e.FailureCount, "total_count": e.TotalCount,
		"throttled_count": e.ThrottledCount, "experiment_id": e.ExperimentID,
		"variant": e.Variant, "param": e.Param, "value": e.Value, "sample_interval": si,
	}
}

func write(t *testing.T, s jobcast.TelemetryStore, events ...jobcast.Event) {
	t.Helper()
	if err := s.Write(context.Background(), events); err != nil {
		t.Fatalf("Write(%d events): %v", len(events), err)
	}
}

func query(t *testing.T, s jobcast.TelemetryStore, q string, args ...any) *jobcast.Rows {
	t.Helper()
	rows, err := s.Query(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("Query(%q): %v", q, err)
	}
	return rows
}

// one returns the single value a query answers.
func one(t *testing.T, s jobcast.TelemetryStore, q string, args ...any) any {
	t.Helper()
	rows := query(t, s, q, args...)
	if len(rows.Rows) != 1 || len(rows.Rows[0]) != 1 {
		t.Fatalf("Query(%q) = %v, want one value", q, rows.Rows)
	}
	return rows.Rows[0][0]
}

func count(t *testing.T, s jobcast.TelemetryStore) int64 {
	t.Helper()
	n, ok := one(t, s, "SELECT count(*) FROM events").(int64)
	if !ok {
		t.Fatalf("count(*) is not an int64")
	}
	return n
}

// checkRow compares a row answered for Columns with want(e), by column name.
func checkRow(t *testing.T, cols []string, row []any, e jobcast.Event) {
	t.Helper()
	w := want(e)
	for i, c := range cols {
		got, exp := row[i], w[c]
		if gt, ok := got.(time.Time); ok {
			if et, _ := exp.(time.Time); !gt.Equal(et) {
				t.Errorf("%s = %v, want %v", c, gt, et)
			}
			continue
		}
		if got != exp {
			t.Errorf("%s = %#v (%T), want %#v (%T)", c, got, got, exp, exp)
		}
	}
}

func testEveryColumnRoundTrips(t *testing.T, s jobcast.TelemetryStore) {
	e := fullEvent()
	write(t, s, e)
	rows := query(t, s, "SELECT * FROM events")
	got := append([]string(nil), rows.Columns...)
	exp := append([]string(nil), Columns...)
	sort.Strings(got)
	sort.Strings(exp)
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("columns of events = %v, want %v", rows.Columns, Columns)
	}
	if len(rows.Rows) != 1 {
		t.Fatalf("got %d rows, want 1", len(rows.Rows))
	}
	checkRow(t, rows.Columns, rows.Rows[0], e)

	// By name, in the suite's order, through a query with an argument.
	rows = query(t, s, "SELECT "+strings.Join(Columns, ", ")+" FROM events WHERE job_id = ?", e.JobID)
	if !reflect.DeepEqual(rows.Columns, Columns) {
		t.Fatalf("Columns = %v, want %v", rows.Columns, Columns)
	}
	if len(rows.Rows) != 1 {
		t.Fatalf("got %d rows, want 1", len(rows.Rows))
	}
	checkRow(t, rows.Columns, rows.Rows[0], e)
	if ts, ok := rows.Rows[0][0].(time.Time); !ok || ts.Location() != time.UTC {
		t.Errorf("ts = %#v, want a time.Time in UTC", rows.Rows[0][0])
	}
}

func testZeroEvent(t *testing.T, s jobcast.TelemetryStore) {
	e := jobcast.Event{TS: base, Event: jobcast.EventError}
	write(t, s, e)
	rows := query(t, s, "SELECT "+strings.Join(Columns, ", ")+" FROM events")
	if len(rows.Rows) != 1 {
		t.Fatalf("got %d rows, want 1", len(rows.Rows))
	}
	checkRow(t, rows.Columns, rows.Rows[0], e)
	// Empty strings group with each other, not as NULLs.
	if n := one(t, s, "SELECT count(*) FROM events WHERE pipeline = '' AND error_code = '' AND retryable = false AND close_code = 0"); n != int64(1) {
		t.Errorf("rows with '' and 0 = %v, want 1", n)
	}
}

func testEmptyBatch(t *testing.T, s jobcast.TelemetryStore) {
	ctx := context.Background()
	if err := s.Write(ctx, nil); err != nil {
		t.Fatalf("Write(nil): %v", err)
	}
	if err := s.Write(ctx, []jobcast.Event{}); err != nil {
		t.Fatalf("Write(empty): %v", err)
	}
	if n := count(t, s); n != 0 {
		t.Fatalf("count = %d, want 0", n)
	}
}

func testCounts(t *testing.T, s jobcast.TelemetryStore) {
	names := []string{jobcast.EventConnected, jobcast.EventHeartbeat, jobcast.EventDisconnected, jobcast.EventConnectFailed}
	exp := map[string]int64{}
	var batch []jobcast.Event
	for i := range 1000 {
		name := names[i*7%len(names)]
		exp[name]++
		batch = append(batch, jobcast.Event{TS: base.Add(time.Duration(i) * time.Millisecond), Event: name, JobID: fmt.Sprintf("job-%d", i%13)})
		if len(batch) == 97 {
			write(t, s, batch...)
			batch = nil
		}
	}
	write(t, s, batch...)
	rows := query(t, s, "SELECT event, count(*) AS n FROM events GROUP BY event")
	got := map[string]int64{}
	for _, r := range rows.Rows {
		name, _ := r[0].(string)
		n, ok := r[1].(int64)
		if !ok {
			t.Fatalf("count(*) = %#v, want an int64", r[1])
		}
		got[name] = n
	}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("counts = %v, want %v", got, exp)
	}
	if n := one(t, s, "SELECT count(DISTINCT job_id) FROM events"); n != int64(13) {
		t.Errorf("distinct jobs = %#v, want 13", n)
	}
}

func testSampleIntervalZeroIsOne(t *testing.T, s jobcast.TelemetryStore) {
	write(t, s,
		jobcast.Event{TS: base, Event: jobcast.EventHeartbeat, RTTMs: 10},
		jobcast.Event{TS: base, Event: jobcast.EventHeartbeat, RTTMs: 40, SampleInterval: 1},
		jobcast.Event{TS: base, Event: jobcast.EventHeartbeat, RTTMs: 100, SampleInterval: 8},
	)
	if n := one(t, s, "SELECT count(*) FROM events WHERE sample_interval = 1"); n != int64(2) {
		t.Errorf("events with sample_interval 1 = %#v, want 2", n)
	}
	if n := one(t, s, "SELECT sum(sample_interval) FROM events"); n != int64(10) {
		t.Errorf("sum(sample_interval) = %#v, want int64 10", n)
	}
	// The weighted mean every RTT metric uses: (10 + 40 + 8*100) / 10.
	if avg := one(t, s, "SELECT sum(rtt_ms * sample_interval) / sum(sample_interval) FROM events"); avg != 85.0 {
		t.Errorf("weighted avg rtt = %#v, want 85.0", avg)
	}
}

func testQueryArgsAndTypes(t *testing.T, s jobcast.TelemetryStore) {
	e := fullEvent()
	f := e
	f.TS, f.RTTMs, f.Retryable, f.BytesSent = base.Add(time.Hour), 7.5, false, 10
	write(t, s, e, f)
	rows := query(t, s, `SELECT count(*) AS n, sum(bytes_sent) AS bytes, avg(rtt_ms) AS rtt,
		min(ts) AS first, max(retryable) AS any_retryable, max(pipeline) AS p, NULL AS nothing
		FROM events WHERE ts >= ? AND ts < ? AND pipeline = ?`, base, base.Add(2*time.Hour), "csv_import")
	if len(rows.Rows) != 1 {
		t.Fatalf("got %d rows, want 1", len(rows.Rows))
	}
	exp := []any{int64(2), int64(1<<33 + 10), 10.0, e.TS, true, "csv_import", nil}
	for i, v := range rows.Rows[0] {
		if gt, ok := v.(time.Time); ok {
			if !gt.Equal(exp[i].(time.Time)) {
				t.Errorf("%s = %v, want %v", rows.Columns[i], gt, exp[i])
			}
			continue
		}
		if v != exp[i] {
			t.Errorf("%s = %#v (%T), want %#v (%T)", rows.Columns[i], v, v, exp[i], exp[i])
		}
	}
	// A time argument in another zone is the same instant.
	east := time.FixedZone("UTC+3", 3*3600)
	if n := one(t, s, "SELECT count(*) FROM events WHERE ts > ?", base.In(east).Add(30*time.Minute)); n != int64(1) {
		t.Errorf("events after base+30m (given in UTC+3) = %#v, want 1", n)
	}
}

func testDeleteBefore(t *testing.T, s jobcast.TelemetryStore) {
	ctx := context.Background()
	write(t, s,
		jobcast.Event{TS: base.Add(-2 * time.Hour), Event: "a"},
		jobcast.Event{TS: base.Add(-time.Millisecond), Event: "b"},
		jobcast.Event{TS: base, Event: "c"},
		jobcast.Event{TS: base.Add(time.Millisecond), Event: "d"},
	)
	n, err := s.DeleteBefore(ctx, base.In(time.FixedZone("UTC-5", -5*3600)))
	if err != nil {
		t.Fatalf("DeleteBefore: %v", err)
	}
	if n != 2 {
		t.Errorf("DeleteBefore deleted %d, want 2 (strictly before t)", n)
	}
	rows := query(t, s, "SELECT event FROM events ORDER BY ts")
	if got := fmt.Sprint(rows.Rows); got != "[[c] [d]]" {
		t.Errorf("left %s, want [[c] [d]]", got)
	}
	if n, err := s.DeleteBefore(ctx, base); err != nil || n != 0 {
		t.Errorf("DeleteBefore again = %d, %v; want 0, nil", n, err)
	}
	// Writing after a delete still works.
	write(t, s, jobcast.Event{TS: base.Add(time.Second), Event: "e"})
	if n := count(t, s); n != 3 {
		t.Errorf("count = %d, want 3", n)
	}
}

// testRollup: Rollup builds each ended day once (a store that keeps no
// rollups, or keeps them on insert, builds none), never a day that has not
// ended, and changes no event; late events, retention and Rollup interleave
// without errors.
func testRollup(t *testing.T, s jobcast.TelemetryStore) {
	ctx := context.Background()
	day := base.Truncate(24 * time.Hour)
	write(t, s,
		jobcast.Event{TS: day.Add(-47 * time.Hour), Event: "a", JobID: "j1"},
		jobcast.Event{TS: day.Add(-25 * time.Hour), Event: "b", JobID: "j1"},
		jobcast.Event{TS: day.Add(-time.Hour), Event: "c", JobID: "j2"},
		jobcast.Event{TS: day.Add(time.Hour), Event: "d", JobID: "j2"},
	)
	first, err := s.Rollup(ctx, day)
	if err != nil {
		t.Fatalf("Rollup: %v", err)
	}
	if first != 0 && first != 2 {
		t.Errorf("Rollup built %d days, want 2 (the two ended days with events) or 0 (no rollups to build)", first)
	}
	if n, err := s.Rollup(ctx, day); err != nil || n != 0 {
		t.Errorf("Rollup again = %d, %v; want 0, nil", n, err)
	}
	if n := count(t, s); n != 4 {
		t.Errorf("count after Rollup = %d, want 4", n)
	}
	// A late event of a built day.
	write(t, s, jobcast.Event{TS: day.Add(-30 * time.Minute), Event: "e", JobID: "j3"})
	if n, err := s.Rollup(ctx, day); err != nil || (n != 0 && n != 1) || (first == 0) != (n == 0) {
		t.Errorf("Rollup after a late event = %d, %v; want 1 (or 0 without rollups)", n, err)
	}
	if n, err := s.DeleteBefore(ctx, day.Add(-36*time.Hour)); err != nil || n != 1 {
		t.Errorf("DeleteBefore = %d, %v; want 1", n, err)
	}
	if _, err := s.Rollup(ctx, day.Add(24*time.Hour)); err != nil {
		t.Errorf("Rollup after DeleteBefore: %v", err)
	}
	rows := query(t, s, "SELECT event FROM events ORDER BY ts")
	if got := fmt.Sprint(rows.Rows); got != "[[b] [c] [e] [d]]" {
		t.Errorf("events %s, want [[b] [c] [e] [d]]", got)
	}
}

func untrusted(s jobcast.TelemetryStore, q string, maxRows int) (*jobcast.Rows, error) {
	return s.QueryUntrusted(context.Background(), q, jobcast.QueryLimits{Timeout: time.Minute, MaxRows: maxRows})
}

// badRequest checks that err is an *jobcast.Error E_BAD_REQUEST whose
// message contains msg.
func badRequest(t *testing.T, q string, err error, msg string) {
	t.Helper()
	var je *jobcast.Error
	if !errors.As(err, &je) {
		t.Errorf("QueryUntrusted(%q) = %v, want a *jobcast.Error", q, err)
		return
	}
	if je.Code != protocol.ErrBadRequest || !strings.Contains(je.Message, msg) {
		t.Errorf("QueryUntrusted(%q) = %s: %q, want %s: %q", q, je.Code, je.Message, protocol.ErrBadRequest, msg)
	}
}

func testUntrustedSelect(t *testing.T, s jobcast.TelemetryStore) {
	write(t, s, fullEvent(), jobcast.Event{TS: base, Event: jobcast.EventConnected})
	for _, q := range []string{
		"SELECT event, count(*) AS n FROM events GROUP BY event ORDER BY event",
		"  select event, count(*) as n from events group by event order by event ;  ",
		"WITH e AS (SELECT * FROM events) SELECT event, count(*) AS n FROM e GROUP BY event ORDER BY event -- trailing comment",
	} {
		rows, err := untrusted(s, q, 100)
		if err != nil {
			t.Errorf("QueryUntrusted(%q): %v", q, err)
			continue
		}
		if got := fmt.Sprint(rows.Columns, rows.Rows, rows.Truncated); got != "[event n] [[connected 1] [disconnected 1]] false" {
			t.Errorf("QueryUntrusted(%q) = %s", q, got)
		}
	}
}

func testUntrustedRefusals(t *testing.T, s jobcast.TelemetryStore) {
	write(t, s, fullEvent())
	const notSelect = "only a single SELECT statement is allowed"
	for _, tc := range []struct{ q, msg string }{
		{"", "empty"},
		{" ; ", "empty"},
		{"CREATE TABLE x (a INTEGER)", notSelect},
		{"CREATE VIEW v AS SELECT * FROM events", notSelect},
		{"DROP TABLE events", notSelect},
		{"ALTER TABLE events ADD COLUMN x INTEGER", notSelect},
		{"TRUNCATE events", notSelect},
		{"INSERT INTO events (event) VALUES ('x')", notSelect},
		{"INSERT INTO events (event) SELECT event FROM events", notSelect},
		{"UPDATE events SET node = 'x'", notSelect},
		{"DELETE FROM events", notSelect},
		{"SELECT 1; SELECT 2", notSelect},
		{"SELECT 1; DELETE FROM events", notSelect},
		{"DELETE FROM events; SELECT 1", notSelect},
		{"SELECT 1; DROP TABLE events;", notSelect},
		{"SELEC 1", "syntax error"},
		{"SELECT * FROM events WHERE", "syntax error"},
		{"SELECT no_such_column FROM events", "no_such_column"},
	} {
		_, err := untrusted(s, tc.q, 100)
		badRequest(t, tc.q, err, tc.msg)
	}
	// Nothing was changed.
	if n := count(t, s); n != 1 {
		t.Errorf("count = %d, want 1", n)
	}
	rows := query(t, s, "SELECT * FROM events")
	if len(rows.Columns) != len(Columns) {
		t.Errorf("events has %d columns, want %d", len(rows.Columns), len(Columns))
	}
}

func testUntrustedRowLimit(t *testing.T, s jobcast.TelemetryStore) {
	var batch []jobcast.Event
	for i := range 10 {
		batch = append(batch, jobcast.Event{TS: base.Add(time.Duration(i) * time.Second), Event: fmt.Sprint(i)})
	}
	write(t, s, batch...)
	for _, tc := range []struct {
		maxRows, rows int
		truncated     bool
	}{
		{4, 4, true}, {9, 9, true}, {10, 10, false}, {11, 10, false},
	} {
		rows, err := untrusted(s, "SELECT event FROM events ORDER BY ts DESC", tc.maxRows)
		if err != nil {
			t.Fatalf("MaxRows %d: %v", tc.maxRows, err)
		}
		if len(rows.Rows) != tc.rows || rows.Truncated != tc.truncated {
			t.Errorf("MaxRows %d: %d rows, truncated %v; want %d, %v", tc.maxRows, len(rows.Rows), rows.Truncated, tc.rows, tc.truncated)
		}
		// The query's own order is kept.
		if len(rows.Rows) > 0 && rows.Rows[0][0] != "9" {
			t.Errorf("MaxRows %d: first row %v, want [9]", tc.maxRows, rows.Rows[0])
		}
	}
	// A query's own LIMIT below MaxRows is not a truncation.
	rows, err := untrusted(s, "SELECT event FROM events LIMIT 3", 5)
	if err != nil || len(rows.Rows) != 3 || rows.Truncated {
		t.Errorf("LIMIT 3 under MaxRows 5 = %v, %v", rows, err)
	}
}

func testUntrustedTimeout(t *testing.T, s jobcast.TelemetryStore) {
	q, ok := slowQueries[s.Dialect()]
	if !ok {
		t.Fatalf("no slow query for dialect %q: add one to slowQueries", s.Dialect())
	}
	const limit = 200 * time.Millisecond
	start := time.Now()
	_, err := s.QueryUntrusted(context.Background(), q, jobcast.QueryLimits{Timeout: limit, MaxRows: 10})
	elapsed := time.Since(start)
	badRequest(t, q, err, "time limit")
	// The store must stop the query, not merely stop waiting for it: the
	// next query on the store answers at once.
	if elapsed > limit+10*time.Second {
		t.Errorf("QueryUntrusted took %v with a %v limit", elapsed, limit)
	}
	if n := count(t, s); n != 0 {
		t.Errorf("count = %d, want 0", n)
	}
	// A caller's cancellation is not the query's fault: not a bad request.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.QueryUntrusted(ctx, q, jobcast.QueryLimits{Timeout: time.Minute, MaxRows: 10})
	if err == nil || jobcast.ErrorCode(err) == protocol.ErrBadRequest {
		t.Errorf("QueryUntrusted with a canceled context = %v, want a plain error", err)
	}
}

func testConcurrentQueryWhileWrite(t *testing.T, s jobcast.TelemetryStore) {
	const batches, size = 40, 250
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last int64
			for ctx.Err() == nil {
				rows, err := s.Query(ctx, "SELECT count(*) FROM events")
				if err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				n := rows.Rows[0][0].(int64)
				// Batches are atomic for readers too.
				if n%size != 0 || n < last {
					errs <- fmt.Errorf("count %d after %d: not a whole number of batches, or went back", n, last)
					return
				}
				last = n
			}
		}()
	}
	for b := range batches {
		batch := make([]jobcast.Event, size)
		for i := range batch {
			batch[i] = fullEvent()
			batch[i].TS = base.Add(time.Duration(b*size+i) * time.Millisecond)
		}
		if err := s.Write(context.Background(), batch); err != nil {
			t.Fatalf("Write batch %d: %v", b, err)
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := count(t, s); n != batches*size {
		t.Errorf("count = %d, want %d", n, batches*size)
	}
}

// testConcurrentDeleteWhileWrite runs retention while the recorder writes:
// neither fails, and what is left is exactly the events at or after the
// last cutoff that were written.
func testConcurrentDeleteWhileWrite(t *testing.T, s jobcast.TelemetryStore) {
	const batches, size = 40, 250
	done := make(chan error, 1)
	go func() {
		for b := range batches {
			batch := make([]jobcast.Event, size)
			for i := range batch {
				batch[i] = jobcast.Event{TS: base.Add(time.Duration(b*size+i) * time.Millisecond), Event: jobcast.EventHeartbeat}
			}
			if err := s.Write(context.Background(), batch); err != nil {
				done <- fmt.Errorf("write batch %d: %w", b, err)
				return
			}
		}
		done <- nil
	}()
	var cutoff time.Time
	for i := 0; ; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.DeleteBefore(context.Background(), cutoff); err != nil {
				t.Fatalf("DeleteBefore: %v", err)
			}
			left := batches*size - int64(cutoff.Sub(base)/time.Millisecond)
			if n := count(t, s); n != left {
				t.Errorf("count = %d, want %d", n, left)
			}
			return
		default:
		}
		cutoff = base.Add(time.Duration(min(i*size/2, batches*size)) * time.Millisecond)
		if _, err := s.DeleteBefore(context.Background(), cutoff); err != nil {
			t.Fatalf("DeleteBefore(%v) while writing: %v", cutoff, err)
		}
	}
}
