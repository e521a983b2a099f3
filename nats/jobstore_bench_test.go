package nats_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nuid"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/nats/natstest"
	"github.com/jobcast/jobcast/protocol"
)

// BenchmarkJobStoreUpdate measures the job store's writes against an
// embedded server: create, a progress update (logs nothing) and an error
// update (logs one message, as a start or an end does), on a file stream
// (the product's default) and a memory one, by one writer and by 32 writers
// on distinct jobs. ops/s is the store's throughput; ns/op for the
// parallel cases is wall time per operation, not latency. With
// JOBCAST_BENCH_NATS_CLUSTER=1 it also runs on a three-replica file stream
// of an embedded three-server cluster (the production layout; all three
// servers in this process).
//
//	go test -run '^$' -bench JobStoreUpdate -benchtime 400x ./nats/
func BenchmarkJobStoreUpdate(b *testing.B) {
	url := natstest.NewServer(b)
	storages := []string{"file", "memory", "replicated"}
	var clusterURLs []string
	if os.Getenv("JOBCAST_BENCH_NATS_CLUSTER") == "1" {
		clusterURLs = startJetStreamCluster(b, 3)
	}
	for _, storage := range storages {
		for _, op := range []string{"create", protocol.EventProgress, protocol.EventError} {
			for _, writers := range []int{1, 32} {
				b.Run(fmt.Sprintf("%s/%s/writers=%d", storage, op, writers), func(b *testing.B) {
					// A stream and prefix per run: the benchmark
					// function runs more than once (-count, b.N
					// calibration) on one server.
					run := nuid.Next()
					cfg := nats.JobStoreConfig{Stream: "BENCH_" + run, Prefix: "bench" + run, Memory: storage == "memory"}
					var s *nats.JobStore
					if storage == "replicated" {
						if clusterURLs == nil {
							b.Skip("set JOBCAST_BENCH_NATS_CLUSTER=1 to start a three-server cluster for it")
						}
						cfg.Replicas = 3
						s = newReplicatedJobStore(b, clusterURLs[0], cfg)
					} else {
						var err error
						if s, err = nats.NewJobStore(context.Background(), natstest.Connect(b, url), cfg); err != nil {
							b.Fatal(err)
						}
					}
					benchJobStore(b, s, op, writers)
				})
			}
		}
	}
}

func benchJobStore(b *testing.B, s *nats.JobStore, op string, writers int) {
	ctx := context.Background()
	newJob := func(id string) *jobcast.Job {
		return &jobcast.Job{JobState: protocol.JobState{JobID: id, Pipeline: "csv_import", Status: protocol.StatusPending}}
	}
	jobs := make([]*jobcast.Job, writers)
	if op != "create" {
		for w := range jobs {
			jobs[w] = newJob(fmt.Sprintf("job-%d", w))
			if err := s.CreateJob(ctx, jobs[w]); err != nil {
				b.Fatal(err)
			}
		}
	}
	ev := []protocol.ProducerEvent{{Type: op, Payload: json.RawMessage(`{"processedCount":1,"code":"E_X","message":"the provider timed out"}`)}}
	catalog := jobcast.NewCatalog(nil)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				var err error
				if op == "create" {
					err = s.CreateJob(ctx, newJob(fmt.Sprintf("job-%d", i)))
				} else {
					job := jobs[w]
					prev := job.Rev
					var msgs []*jobcast.Message
					if msgs, err = jobcast.ApplyEvents(job, ev, catalog, time.Now()); err == nil {
						err = s.UpdateJob(ctx, job, prev, msgs)
					}
				}
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
}
