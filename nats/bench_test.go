package nats_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/nats/natstest"
	"github.com/jobcast/jobcast/protocol"
)

// BenchmarkBrokerCrossNode measures publish → deliver between two
// connections (two nodes) through an embedded server, one message at a
// time, and reports the latency's p50 and p99.
//
//	go test -run '^$' -bench BrokerCrossNode -benchtime 2000x ./nats/
func BenchmarkBrokerCrossNode(b *testing.B) {
	url := natstest.NewServer(b)
	pub := nats.NewBroker(natstest.Connect(b, url), "", nil)
	sub := nats.NewBroker(natstest.Connect(b, url), "", nil)
	got := make(chan time.Time, 1)
	cancel, err := sub.Subscribe("job-bench", func(*jobcast.Message) { got <- time.Now() })
	if err != nil {
		b.Fatal(err)
	}
	defer cancel()
	m, err := jobcast.NewMessage(protocol.Envelope{V: protocol.Version, Type: protocol.TypeJobProgress, JobID: "job-bench",
		Pipeline: "csv_import", Seq: 1, TS: 1, Payload: json.RawMessage(`{"processedCount":1,"totalCount":500}`)})
	if err != nil {
		b.Fatal(err)
	}
	msgs := []*jobcast.Message{m}
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		start := time.Now()
		if err := pub.Publish(context.Background(), "job-bench", msgs); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-got).Sub(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
