package dashboard_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/dashboard"
	"github.com/jobcast/jobcast/duckdb"
	"github.com/jobcast/jobcast/metrics"
)

// BenchmarkOverview computes the whole page (every figure and trend, about
// 50 statements) over the test fixture: the fixed cost of one update.
func BenchmarkOverview(b *testing.B) {
	lib := metrics.New(openStore(b, fixture(end)))
	ctx := context.Background()
	for _, r := range []string{"1h", "30d"} {
		b.Run(r, func(b *testing.B) {
			for b.Loop() {
				if _, err := dashboard.Compute(ctx, lib, dashboard.Request{Range: r}, end); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOverviewLarge computes the page over a big events file, such as
// the 10 million events the metrics benchmark generates:
//
//	JOBCAST_BENCH_DASHBOARD_DB=/tmp/jobcast-metrics-bench-v1.duckdb go test -run '^$' -bench OverviewLarge ./dashboard/
//
// The file is copied first (DuckDB locks the file it opens); "now" is its
// last event; the daily rollups are built first, as a node builds them.
func BenchmarkOverviewLarge(b *testing.B) {
	src := os.Getenv("JOBCAST_BENCH_DASHBOARD_DB")
	if src == "" {
		b.Skip("set JOBCAST_BENCH_DASHBOARD_DB to a DuckDB events file (e.g. the metrics benchmark's 10 million events) to run")
	}
	path := filepath.Join(b.TempDir(), "events.duckdb")
	if err := copyFile(src, path); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	store, err := duckdb.Open(ctx, path, duckdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	rows, err := store.Query(ctx, "SELECT max(ts), count(*) FROM events")
	if err != nil || len(rows.Rows) != 1 {
		b.Fatalf("read the file: %v", err)
	}
	now := rows.Rows[0][0].(time.Time).Add(time.Millisecond)
	b.Logf("%v events up to %s", rows.Rows[0][1], now)
	// The daily rollups, as a node's retention sweep builds them.
	if r, ok := jobcast.TelemetryStore(store).(interface {
		Rollup(context.Context, time.Time) (int, error)
	}); ok {
		start := time.Now()
		n, err := r.Rollup(ctx, now)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("built the rollups of %d days in %s", n, time.Since(start).Round(time.Millisecond))
	}
	lib := metrics.New(store)
	for _, r := range []string{"1h", "24h", "7d", "30d"} {
		for _, f := range []map[string]string{nil, {"network_type": "cellular"}} {
			name := r
			if f != nil {
				name += "/cellular"
			}
			b.Run(name, func(b *testing.B) {
				for b.Loop() {
					if _, err := dashboard.Compute(ctx, lib, dashboard.Request{Range: r, Filters: f}, now); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
