package nats_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/storetest"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/nats/natstest"
	"github.com/jobcast/jobcast/protocol"
)

func TestJobStore(t *testing.T) {
	t.Parallel()
	url := natstest.NewServer(t)
	var n atomic.Int64
	storetest.RunJobStoreTests(t, func(t *testing.T) jobcast.JobStore {
		// One server, a stream and subject prefix per test: each store
		// starts empty. In memory: the contract is the same on files, and
		// TestJobStoreOnFiles covers the file stream.
		i := n.Add(1)
		s, err := nats.NewJobStore(context.Background(), natstest.Connect(t, url), nats.JobStoreConfig{
			Stream: fmt.Sprintf("JOBS_%d", i),
			Prefix: fmt.Sprintf("t%d", i),
			Memory: true,
		})
		if err != nil {
			t.Fatalf("NewJobStore: %v", err)
		}
		return s
	})
}

// TestJobStoreOnFiles runs an update with logged messages through the
// default file stream, whose atomic batches the server stages on disk.
func TestJobStoreOnFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := nats.NewJobStore(ctx, natstest.Connect(t, natstest.NewServer(t)), nats.JobStoreConfig{})
	if err != nil {
		t.Fatalf("NewJobStore: %v", err)
	}
	job := &jobcast.Job{JobState: protocol.JobState{JobID: "job.files", Pipeline: "csv_import", Status: protocol.StatusPending}}
	if err := s.CreateJob(ctx, job); err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	prev := job.Rev
	events, err := protocol.ParseProducerEvents([]byte(`[{"type":"started"},{"type":"progress","payload":{"processedCount":1}},{"type":"completed"}]`))
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := jobcast.ApplyEvents(job, events, jobcast.NewCatalog(nil), time.UnixMilli(1_700_000_000_000))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateJob(ctx, job, prev, msgs); err != nil {
		t.Fatalf("UpdateJob: %v", err)
	}
	got, err := s.GetJob(ctx, "job.files")
	if err != nil || got.Rev != job.Rev || got.Status != protocol.StatusCompleted || got.Seq != 3 {
		t.Fatalf("GetJob = %+v, %v; want rev %d, completed at seq 3", got, err, job.Rev)
	}
	logged, err := s.Messages(ctx, "job.files", 0)
	if err != nil || len(logged) != 2 || logged[0].Seq != 1 || logged[1].Seq != 3 {
		t.Fatalf("Messages = %+v, %v; want seqs 1 and 3", logged, err)
	}
}

// TestJobIDsAsSubjects stores jobs whose ids hold bytes a subject token
// cannot ('.', '*', '>', '%', space) and ids their escapes could be
// mistaken for: each is its own job.
func TestJobIDsAsSubjects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := nats.NewJobStore(ctx, natstest.Connect(t, natstest.NewServer(t)), nats.JobStoreConfig{Memory: true})
	if err != nil {
		t.Fatalf("NewJobStore: %v", err)
	}
	ids := []string{"a.b", "a%2Eb", "a%b", "a*", "a>", "a b", "a:b_c-d", "a"}
	for i, id := range ids {
		job := &jobcast.Job{JobState: protocol.JobState{JobID: id, Pipeline: "p", TotalCount: int64(i)}}
		if err := s.CreateJob(ctx, job); err != nil {
			t.Fatalf("CreateJob(%q): %v", id, err)
		}
	}
	for i, id := range ids {
		got, err := s.GetJob(ctx, id)
		if err != nil || got.JobID != id || got.TotalCount != int64(i) {
			t.Fatalf("GetJob(%q) = %+v, %v", id, got, err)
		}
	}
}

// TestJobStoreBigAndRefusedBatches: a producer batch of 1,000 logged
// events (the API's maximum) is one update, although JetStream takes at most
// 1,000 messages per atomic batch; and when the server refuses a batch
// because too many are in flight, the update is sent again and commits.
func TestJobStoreBigAndRefusedBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.Start(t, func(o *server.Options) {
		o.JetStreamLimits.MaxBatchInflightPerStream = 1
		o.JetStreamLimits.MaxBatchTimeout = 200 * time.Millisecond
	})
	s, err := nats.NewJobStore(ctx, natstest.Connect(t, srv.URL), nats.JobStoreConfig{Memory: true})
	if err != nil {
		t.Fatalf("NewJobStore: %v", err)
	}
	catalog := jobcast.NewCatalog(nil)
	update := func(s *nats.JobStore, id string, n int) error {
		job, err := s.GetJob(ctx, id)
		if err != nil {
			return err
		}
		prev := job.Rev
		evs := make([]protocol.ProducerEvent, n)
		for i := range evs {
			evs[i] = protocol.ProducerEvent{Type: protocol.EventError, Payload: json.RawMessage(fmt.Sprintf(`{"code":"E_%d","message":"%s"}`, i, strings.Repeat("x", 300)))}
		}
		msgs, err := jobcast.ApplyEvents(job, evs, catalog, time.UnixMilli(1_764_133_200_000))
		if err != nil {
			return err
		}
		return s.UpdateJob(ctx, job, prev, msgs)
	}
	create := func(id string) {
		t.Helper()
		if err := s.CreateJob(ctx, &jobcast.Job{JobState: protocol.JobState{JobID: id, Pipeline: "p", Status: protocol.StatusPending}}); err != nil {
			t.Fatalf("CreateJob(%s): %v", id, err)
		}
	}

	create("job-big")
	if err := update(s, "job-big", protocol.MaxEventsPerBatch); err != nil {
		t.Fatalf("UpdateJob with %d logged messages: %v", protocol.MaxEventsPerBatch, err)
	}
	logged, err := s.Messages(ctx, "job-big", 0)
	if err != nil || len(logged) != protocol.MaxEventsPerBatch || logged[999].Seq != 1000 {
		t.Fatalf("Messages = %d messages, %v; want 1000 in seq order", len(logged), err)
	}

	// Another writer's batch, opened and never committed, holds the one
	// slot until the server abandons it; the update meanwhile is refused,
	// retried, and commits.
	create("job-wait")
	open := natsgo.NewMsg("jobcast.log.job-other")
	open.Data = []byte("[]")
	open.Header.Set("Nats-Batch-Id", "held-open")
	open.Header.Set("Nats-Batch-Sequence", "1")
	if err := natstest.Connect(t, srv.URL).PublishMsg(open); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := update(s, "job-wait", 2); err != nil {
		t.Fatalf("UpdateJob while another batch holds the slot: %v", err)
	}
	if logged, err := s.Messages(ctx, "job-wait", 0); err != nil || len(logged) != 2 {
		t.Fatalf("Messages = %v, %v", logged, err)
	}
	t.Logf("committed after %v", time.Since(start))
}
