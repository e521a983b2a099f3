package duckdb_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/duckdb"
)

// FuzzQueryUntrusted feeds arbitrary SQL to the guard of /v1/sql and of
// custom alert rules. Whatever the text, QueryUntrusted answers rows or an
// error without panicking, and afterwards the store is unchanged: the same
// events, the same tables, no new files beside the database (no COPY, no
// ATTACH, no export). The seeds are statements the guard must refuse; the
// fuzzer mutates them into variants.
func FuzzQueryUntrusted(f *testing.F) {
	for _, s := range []string{
		`SELECT count(*) FROM events`,
		`SELECT event, count(*) FROM events GROUP BY ALL`,
		`DELETE FROM events`,
		`SELECT 1; DELETE FROM events`,
		`WITH d AS (DELETE FROM events RETURNING *) SELECT * FROM d`,
		`DROP TABLE events`,
		`CREATE TABLE x AS SELECT 1`,
		`INSERT INTO events (ts, event) VALUES (now(), 'x')`,
		`UPDATE events SET event = 'x'`,
		`ATTACH 'fuzz-attached.db' AS x`,
		`COPY events TO 'fuzz-copy.csv'`,
		`EXPORT DATABASE 'fuzz-export'`,
		`SELECT * FROM read_csv('/etc/passwd')`,
		`SELECT * FROM read_text('/etc/hostname')`,
		`SELECT * FROM 'fuzz.parquet'`,
		`SELECT * FROM glob('/*')`,
		`INSTALL httpfs`,
		`LOAD httpfs`,
		`SET enable_external_access = true`,
		`PRAGMA enable_profiling`,
		`SELECT * FROM duckdb_settings()`,
		`CALL pragma_version()`,
		`SELECT 1 -- ) ; DELETE FROM events`,
		`SELECT 1) AS q; DELETE FROM events; SELECT (1`,
		`SELECT $1`,
		`SELECT count(*) FROM range(1000000000)`,
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	ctx := context.Background()
	s, err := duckdb.Open(ctx, filepath.Join(dir, "fuzz.duckdb"), duckdb.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	events := make([]jobcast.Event, 50)
	for i := range events {
		events[i] = realisticEvent(i)
	}
	if err := s.Write(ctx, events); err != nil {
		f.Fatal(err)
	}
	state := func() (int64, []string) {
		rows, err := s.Query(ctx, `SELECT (SELECT count(*) FROM events), (SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables)`)
		if err != nil {
			f.Fatal(err)
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			f.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			if e.Name() != "fuzz.duckdb.wal" { // comes and goes with checkpoints
				names = append(names, e.Name())
			}
		}
		tables, _ := rows.Rows[0][1].(string)
		return rows.Rows[0][0].(int64), append(names, "tables:"+tables)
	}
	wantN, wantFiles := state()
	f.Fuzz(func(t *testing.T, query string) {
		_, err := s.QueryUntrusted(ctx, query, jobcast.QueryLimits{Timeout: 2 * time.Second, MaxRows: 100})
		var je *jobcast.Error
		if err != nil && !errors.As(err, &je) {
			// Not a refusal: DuckDB failed on the query itself; that is
			// allowed, as long as nothing changed.
			t.Logf("%q: %v", query, err)
		}
		n, files := state()
		if n != wantN || !slices.Equal(files, wantFiles) {
			t.Fatalf("%q changed the store: %d events (want %d), files %v (want %v)", query, n, wantN, files, wantFiles)
		}
	})
}
