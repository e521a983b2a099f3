package metrics_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/jobcast/jobcast/clickhouse"
	"github.com/jobcast/jobcast/clickhouse/chtest"
	"github.com/jobcast/jobcast/metrics"
)

// openClickHouse opens a ClickHouse store (see chtest for the server)
// holding evs.
func openClickHouse(t *testing.T) *clickhouse.Store {
	t.Helper()
	ctx := context.Background()
	store, err := clickhouse.Open(ctx, clickhouse.Config{URL: chtest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Error(err)
		}
	})
	return store
}

// TestClickHouseEveryMetric checks every metric's hand-computed answers
// (the standard table) on ClickHouse, as TestComputeEveryMetric does on
// DuckDB.
func TestClickHouseEveryMetric(t *testing.T) {
	t.Parallel()
	store := openClickHouse(t)
	if err := store.Write(context.Background(), fixture()); err != nil {
		t.Fatal(err)
	}
	lib := metrics.New(store)
	for _, d := range metrics.Definitions() {
		want, ok := standard[d.Name]
		if !ok {
			t.Errorf("metric %s has no hand-computed values in standard", d.Name)
			continue
		}
		all := hourQuery(d.Name)
		wifi := hourQuery(d.Name)
		wifi.Filters = map[string]string{"network_type": "wifi"}
		byNet := hourQuery(d.Name)
		byNet.GroupBy = []string{"network_type"}
		buckets := hourQuery(d.Name)
		buckets.Bucket = 30 * time.Minute
		for _, c := range []struct {
			name string
			q    metrics.Query
			want []pt
		}{
			{"all", all, want.all},
			{"wifi", wifi, want.wifi},
			{"by_network", byNet, want.byNet},
			{"30m_buckets", buckets, want.buckets},
		} {
			t.Run(d.Name+"/"+c.name, func(t *testing.T) {
				check(t, lib, c.q, d.Unit, c.want)
			})
		}
	}
}

// TestClickHouseSameAsDuckDB compares every metric in every shape of the
// rollup tests over their 5,000-odd random events: ClickHouse answers as
// DuckDB does.
func TestClickHouseSameAsDuckDB(t *testing.T) {
	t.Parallel()
	ch := openClickHouse(t)
	raw, _ := openPair(t)
	writeBoth(t, raw, ch, rollupEvents())
	sameAnswers(t, "clickhouse", raw, ch)
}

// TestClickHouseTopErrors compares the top-errors table with DuckDB's.
func TestClickHouseTopErrors(t *testing.T) {
	t.Parallel()
	ch := openClickHouse(t)
	raw, _ := openPair(t)
	writeBoth(t, raw, ch, fixture())
	q := metrics.Query{From: t0.Add(-2 * time.Hour), To: t0.Add(2 * time.Hour)}
	want, err := metrics.New(raw).TopErrors(context.Background(), q, 50)
	if err != nil {
		t.Fatal(err)
	}
	got, err := metrics.New(ch).TopErrors(context.Background(), q, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 || !reflect.DeepEqual(got, want) {
		t.Fatalf("ClickHouse top errors\n%+v\nwant (DuckDB)\n%+v", got, want)
	}
}
