package nats_test

import (
	"context"
	"encoding/json"
	"errors"
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
	for _, storage := range []string{"memory", "file"} {
		t.Run(storage, func(t *testing.T) {
			t.Parallel()
			storetest.RunJobStoreTests(t, func(t *testing.T) jobcast.JobStore {
				// One server, a stream and subject prefix per test:
				// each store starts empty.
				i := n.Add(1)
				s, err := nats.NewJobStore(context.Background(), natstest.Connect(t, url), nats.JobStoreConfig{
					Stream: fmt.Sprintf("JOBS_%d", i),
					Prefix: fmt.Sprintf("t%d", i),
					Memory: storage == "memory",
				})
				if err != nil {
					t.Fatalf("NewJobStore: %v", err)
				}
				return s
			})
		})
	}
}

// TestJobStoreRevisionAcrossSubjects: a progress update writes the state
// subject and a logged update the log subject, and each must still see the
// other's write as a new revision: the loser of any pair conflicts and
// changes nothing.
func TestJobStoreRevisionAcrossSubjects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := nats.NewJobStore(ctx, natstest.Connect(t, natstest.NewServer(t)), nats.JobStoreConfig{})
	if err != nil {
		t.Fatalf("NewJobStore: %v", err)
	}
	catalog := jobcast.NewCatalog(nil)
	for i, tt := range []struct{ first, second string }{
		{protocol.EventProgress, protocol.EventError},
		{protocol.EventError, protocol.EventProgress},
		{protocol.EventError, protocol.EventError},
		{protocol.EventProgress, protocol.EventProgress},
	} {
		t.Run(tt.first+"-then-"+tt.second, func(t *testing.T) {
			id := fmt.Sprintf("job-%d", i)
			if err := s.CreateJob(ctx, &jobcast.Job{JobState: protocol.JobState{JobID: id, Pipeline: "p"}}); err != nil {
				t.Fatalf("CreateJob: %v", err)
			}
			update := func(typ, code string, prev *jobcast.Job) (*jobcast.Job, error) {
				job := *prev
				ev := []protocol.ProducerEvent{{Type: typ, Payload: json.RawMessage(`{"processedCount":1,"code":"` + code + `"}`)}}
				msgs, err := jobcast.ApplyEvents(&job, ev, catalog, time.UnixMilli(1_764_133_200_000))
				if err != nil {
					t.Fatal(err)
				}
				return &job, s.UpdateJob(ctx, &job, prev.Rev, msgs)
			}
			base, err := s.GetJob(ctx, id)
			if err != nil {
				t.Fatalf("GetJob: %v", err)
			}
			won, err := update(tt.first, "E_FIRST", base)
			if err != nil {
				t.Fatalf("first UpdateJob: %v", err)
			}
			if _, err := update(tt.second, "E_SECOND", base); !errors.Is(err, jobcast.ErrConflict) {
				t.Fatalf("second UpdateJob on the same revision = %v, want ErrConflict", err)
			}
			got, err := s.GetJob(ctx, id)
			if err != nil || got.Rev != won.Rev || got.Seq != 1 {
				t.Fatalf("GetJob = %+v, %v; want the first update's rev %d, seq 1", got, err, won.Rev)
			}
			logged, err := s.Messages(ctx, id, 0)
			if err != nil {
				t.Fatalf("Messages: %v", err)
			}
			want := 0
			if tt.first == protocol.EventError {
				want = 1
			}
			if len(logged) != want {
				t.Fatalf("Messages = %+v; want only the first update's", logged)
			}
			// The winner's revision works, whatever was written last.
			if _, err := update(tt.second, "E_SECOND", got); err != nil {
				t.Fatalf("UpdateJob on the current revision: %v", err)
			}
		})
	}
}

// TestJobStoreReadsBatchFormat: logs written as atomic batches (a bare JSON
// array on the log subject, then the state on the state subject), as every
// update that logged something was before one-message updates and as
// updates past 256 KB still are, read and update as before.
func TestJobStoreReadsBatchFormat(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	nc := natstest.Connect(t, natstest.NewServer(t))
	s, err := nats.NewJobStore(ctx, nc, nats.JobStoreConfig{})
	if err != nil {
		t.Fatalf("NewJobStore: %v", err)
	}
	job := &jobcast.Job{JobState: protocol.JobState{JobID: "job.old", Pipeline: "p", Status: protocol.StatusPending}}
	if err := s.CreateJob(ctx, job); err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	now := time.UnixMilli(1_764_133_200_000)
	started, err := jobcast.ApplyEvents(job, []protocol.ProducerEvent{{Type: protocol.EventStarted}}, jobcast.NewCatalog(nil), now)
	if err != nil {
		t.Fatal(err)
	}
	// What an atomic batch leaves in the stream, written directly.
	logMsg := natsgo.NewMsg("jobcast.log.job%2Eold")
	logMsg.Data = []byte("[" + string(started[0].Frame) + "]")
	state, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	stateMsg := natsgo.NewMsg("jobcast.job.job%2Eold")
	stateMsg.Data = state
	stateMsg.Header.Set("Nats-Rollup", "sub")
	for _, m := range []*natsgo.Msg{logMsg, stateMsg} {
		if _, err := nc.RequestMsg(m, 5*time.Second); err != nil {
			t.Fatalf("publish %s: %v", m.Subject, err)
		}
	}

	got, err := s.GetJob(ctx, "job.old")
	if err != nil || got.Status != protocol.StatusRunning || got.Seq != 1 {
		t.Fatalf("GetJob = %+v, %v; want running at seq 1", got, err)
	}
	prev := got.Rev
	done, err := jobcast.ApplyEvents(got, []protocol.ProducerEvent{{Type: protocol.EventCompleted}}, jobcast.NewCatalog(nil), now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateJob(ctx, got, prev, done); err != nil {
		t.Fatalf("UpdateJob on a batch-written job: %v", err)
	}
	logged, err := s.Messages(ctx, "job.old", 0)
	if err != nil || len(logged) != 2 || logged[0].Type != protocol.TypeJobStarted || logged[1].Type != protocol.TypeJobCompleted {
		t.Fatalf("Messages = %+v, %v; want job_started, job_completed", logged, err)
	}
	if n, err := s.DeleteFinishedBefore(ctx, now.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("DeleteFinishedBefore = %d, %v; want 1", n, err)
	}
	if _, err := s.GetJob(ctx, "job.old"); !errors.Is(err, jobcast.ErrJobNotFound) {
		t.Fatalf("GetJob after the sweep = %v, want ErrJobNotFound", err)
	}
	if logged, err := s.Messages(ctx, "job.old", 0); err != nil || len(logged) != 0 {
		t.Fatalf("Messages after the sweep = %+v, %v; want none", logged, err)
	}
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
