package nats_test

import (
	"context"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/nats/natstest"
	"github.com/jobcast/jobcast/protocol"
)

// TestNATSDownIsUnavailable: while the server is away every store call
// fails at once (no caller deadline: the store's own 10 s bound would show
// as a hang) with E_UNAVAILABLE, which the producer API answers 503 with
// Retry-After, and a new subscription registers without waiting for the
// server, to be sent again on reconnect.
func TestNATSDownIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv.URL)
	store, err := nats.NewJobStore(ctx, nc, nats.JobStoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	broker := nats.NewBroker(nc, "", nil)
	job := &jobcast.Job{JobState: protocol.JobState{JobID: "job-down", Pipeline: "csv_import", Status: protocol.StatusPending, Seq: 1}}
	if err := store.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	msg, err := jobcast.NewMessage(protocol.Envelope{Type: protocol.TypeError, JobID: "job-down", Seq: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"CreateJob", func() error {
			return store.CreateJob(ctx, &jobcast.Job{JobState: protocol.JobState{JobID: "job-new", Pipeline: "csv_import"}})
		}},
		{"GetJob", func() error { _, err := store.GetJob(ctx, "job-down"); return err }},
		{"UpdateJob", func() error { return store.UpdateJob(ctx, job, job.Rev, nil) }},
		{"UpdateJob with log", func() error { return store.UpdateJob(ctx, job, job.Rev, []*jobcast.Message{msg}) }},
		{"Messages", func() error { _, err := store.Messages(ctx, "job-down", 0); return err }},
	} {
		start := time.Now()
		err := c.call()
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s took %s while NATS is down, want < 1s", c.name, took)
		}
		if code := jobcast.ErrorCode(err); code != protocol.ErrUnavailable {
			t.Errorf("%s while NATS is down = %v (%s), want %s", c.name, err, code, protocol.ErrUnavailable)
		}
	}
	start := time.Now()
	got := make(chan int64, 1)
	cancel, err := broker.Subscribe("job-down", func(m *jobcast.Message) { got <- m.Seq })
	if err != nil || time.Since(start) > time.Second {
		t.Fatalf("Subscribe while NATS is down = %v after %s, want nil at once", err, time.Since(start))
	}
	defer cancel()

	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The subscription made during the outage delivers once the
		// connection is back (publishes before that are lost: core NATS).
		if nc.IsConnected() {
			if err := broker.Publish(ctx, "job-down", []*jobcast.Message{msg}); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case seq := <-got:
			if seq != 2 {
				t.Fatalf("got seq %d", seq)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the subscription made during the outage never delivered")
		}
	}
}
