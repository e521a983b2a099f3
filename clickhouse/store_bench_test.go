package clickhouse_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/clickhouse"
	"github.com/jobcast/jobcast/clickhouse/chtest"
)

// BenchmarkWrite measures ingestion: Write calls of batch events, as the
// recorder makes them. It needs a server (chtest.EnvURL) and skips without.
//
//	JOBCAST_TEST_CLICKHOUSE_URL=clickhouse://127.0.0.1:19000 go test -run '^$' -bench Write -benchtime 20x ./clickhouse/
func BenchmarkWrite(b *testing.B) {
	if os.Getenv(chtest.EnvURL) == "" {
		b.Skipf("no ClickHouse server: set %s", chtest.EnvURL)
	}
	for _, batch := range []int{1_000, 10_000, clickhouse.MaxBatchSize, 65_536} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s, err := clickhouse.Open(context.Background(), clickhouse.Config{URL: chtest.URL(b)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			evs := make([]jobcast.Event, batch)
			base := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
			for i := range evs {
				evs[i] = jobcast.Event{
					TS: base.Add(time.Duration(i) * time.Millisecond), Event: jobcast.EventHeartbeat, Node: "n1",
					JobID: fmt.Sprintf("job-%d", i%500), Pipeline: "csv_import", ConnID: fmt.Sprintf("c-%d", i%500),
					AppVersion: "2.0", OSVersion: "iOS 18", NetworkType: "wifi", DeviceModel: "iPhone15,2",
					RTTMs: float64(i % 300), SampleInterval: 1,
				}
			}
			b.ResetTimer()
			for b.Loop() {
				if err := s.Write(context.Background(), evs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkWriteThreeNodes is three nodes' recorders writing at once: three
// stores (three connections), each writing batches of 10,000 events.
//
//	JOBCAST_TEST_CLICKHOUSE_URL=clickhouse://127.0.0.1:19000 go test -run '^$' -bench WriteThreeNodes -benchtime 10x ./clickhouse/
func BenchmarkWriteThreeNodes(b *testing.B) {
	if os.Getenv(chtest.EnvURL) == "" {
		b.Skipf("no ClickHouse server: set %s", chtest.EnvURL)
	}
	const nodes, batch = 3, 10_000
	url := chtest.URL(b)
	stores := make([]*clickhouse.Store, nodes)
	for i := range stores {
		s, err := clickhouse.Open(context.Background(), clickhouse.Config{URL: url})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	base := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	evs := make([][]jobcast.Event, nodes)
	for n := range evs {
		evs[n] = make([]jobcast.Event, batch)
		for i := range evs[n] {
			evs[n][i] = jobcast.Event{
				TS: base.Add(time.Duration(i) * time.Millisecond), Event: jobcast.EventHeartbeat, Node: fmt.Sprintf("n%d", n),
				JobID: fmt.Sprintf("job-%d", i%500), Pipeline: "csv_import", AppVersion: "2.0", NetworkType: "wifi",
				RTTMs: float64(i % 300), SampleInterval: 1,
			}
		}
	}
	b.ResetTimer()
	for b.Loop() {
		errs := make(chan error, nodes)
		for n, s := range stores {
			go func() { errs <- s.Write(context.Background(), evs[n]) }()
		}
		for range nodes {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*nodes*batch)/b.Elapsed().Seconds(), "events/s")
}
