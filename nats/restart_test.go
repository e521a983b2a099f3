package nats_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/nats/natstest"
	"github.com/jobcast/jobcast/protocol"
)

// TestNATSRestart stops the NATS server under a node and starts it again:
// while it is down the store fails fast (within the caller's deadline)
// instead of hanging; afterwards the connection is back by itself, the
// state and log written before are there (file storage), updates work, and
// a subscription made before the outage delivers again.
func TestNATSRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv.URL)
	store, err := nats.NewJobStore(ctx, nc, nats.JobStoreConfig{})
	if err != nil {
		t.Fatalf("NewJobStore: %v", err)
	}
	broker := nats.NewBroker(nc, "", nil)
	got := make(chan int64, 16)
	cancel, err := broker.Subscribe("job-restart", func(m *jobcast.Message) { got <- m.Seq })
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()

	job := &jobcast.Job{JobState: protocol.JobState{JobID: "job-restart", Pipeline: "csv_import", Status: protocol.StatusPending}}
	if err := store.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	update := func(ctx context.Context, body string) ([]*jobcast.Message, error) {
		t.Helper()
		evs, err := protocol.ParseProducerEvents([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		cur, err := store.GetJob(ctx, "job-restart")
		if err != nil {
			return nil, err
		}
		prev := cur.Rev
		msgs, err := jobcast.ApplyEvents(cur, evs, jobcast.NewCatalog(nil), time.UnixMilli(1_764_133_200_000))
		if err != nil {
			t.Fatal(err)
		}
		return msgs, store.UpdateJob(ctx, cur, prev, msgs)
	}
	if _, err := update(ctx, `[{"type":"started"},{"type":"error","payload":{"code":"E_X"}}]`); err != nil {
		t.Fatalf("update before the outage: %v", err)
	}

	srv.Stop()
	down, cancelDown := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = update(down, `{"type":"progress","payload":{"processedCount":1}}`)
	cancelDown()
	if err == nil || errors.Is(err, jobcast.ErrConflict) {
		t.Fatalf("update while NATS is down = %v, want an error", err)
	}

	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for !nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("the connection did not come back within 10s")
		}
		time.Sleep(10 * time.Millisecond) // polling the client's state; no signal to wait on
	}
	logged, err := store.Messages(ctx, "job-restart", 0)
	if err != nil || len(logged) != 2 {
		t.Fatalf("log after the restart = %v, %v; want the 2 messages written before", logged, err)
	}
	msgs, err := update(ctx, `{"type":"completed"}`)
	if err != nil {
		t.Fatalf("update after the restart: %v", err)
	}
	if cur, err := store.GetJob(ctx, "job-restart"); err != nil || cur.Status != protocol.StatusCompleted || cur.Seq != 3 {
		t.Fatalf("job after the restart = %+v, %v", cur, err)
	}
	// The subscription is renewed on reconnect; publish until it hears,
	// since the resubscription may land a moment after IsConnected.
	for {
		if err := broker.Publish(ctx, "job-restart", msgs); err != nil {
			t.Fatal(err)
		}
		select {
		case seq := <-got:
			if seq != 3 {
				t.Fatalf("delivered seq %d, want 3", seq)
			}
			return
		case <-time.After(50 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("the subscription made before the outage delivers nothing after it")
			}
		}
	}
}
