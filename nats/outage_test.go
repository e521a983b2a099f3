package nats_test

import (
	"context"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/nats/natstest"
	"github.com/jobcast/jobcast/netsim"
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

// TestBrokerCatchesUp: a node whose connection to NATS breaks keeps its
// clients; what other nodes publish meanwhile is lost to it (core NATS), so
// after the reconnect its broker delivers the missed messages from the
// store, and a live message whose seq skips ahead (lost, or overtaken)
// brings the ones before it first: the subscriber sees every seq once, in
// order, the error and the terminal message included.
func TestBrokerCatchesUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.Start(t)
	target := strings.TrimPrefix(srv.URL, "nats://")
	px, err := netsim.Start("127.0.0.1:0", target, netsim.Profile{})
	if err != nil {
		t.Fatal(err)
	}
	addr := px.Addr()
	t.Cleanup(func() { px.Close() })

	// Node 1 reaches NATS through the proxy; node 2 directly.
	nc1, err := natsgo.Connect("nats://"+addr, natsgo.ReconnectWait(20*time.Millisecond), natsgo.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc1.Close)
	nc2 := natstest.Connect(t, srv.URL)
	store1, err := nats.NewJobStore(ctx, nc1, nats.JobStoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	store2, err := nats.NewJobStore(ctx, nc2, nats.JobStoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	broker1 := nats.NewBroker(nc1, "", nil).CatchUpFrom(store1)
	broker2 := nats.NewBroker(nc2, "", nil)
	got := make(chan protocol.Envelope, 64)
	cancel, err := broker1.Subscribe("job-catch", func(m *jobcast.Message) { got <- m.Envelope })
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()

	job := &jobcast.Job{JobState: protocol.JobState{JobID: "job-catch", Pipeline: "csv_import", Status: protocol.StatusPending}}
	if err := store2.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	// apply commits events through node 2, and publishes the messages
	// whose seq publish selects.
	apply := func(body string, publish func(seq int64) bool) {
		t.Helper()
		evs, err := protocol.ParseProducerEvents([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		cur, err := store2.GetJob(ctx, "job-catch")
		if err != nil {
			t.Fatal(err)
		}
		prev := cur.Rev
		msgs, err := jobcast.ApplyEvents(cur, evs, jobcast.NewCatalog(nil), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := store2.UpdateJob(ctx, cur, prev, msgs); err != nil {
			t.Fatal(err)
		}
		var pub []*jobcast.Message
		for _, m := range msgs {
			if publish(m.Seq) {
				pub = append(pub, m)
			}
		}
		if err := broker2.Publish(ctx, "job-catch", pub); err != nil {
			t.Fatal(err)
		}
	}
	all := func(int64) bool { return true }
	var seen []string
	expect := func(upTo int64) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for int64(len(seen)) < upTo {
			select {
			case e := <-got:
				seen = append(seen, e.Type)
				if int64(len(seen)) != e.Seq {
					t.Fatalf("got seq %d after %v, want %d", e.Seq, seen[:len(seen)-1], len(seen))
				}
			case <-timeout:
				t.Fatalf("got %v, want seqs up to %d", seen, upTo)
			}
		}
	}
	apply(`[{"type":"started"},{"type":"progress","payload":{"processedCount":1}}]`, all)
	expect(2)

	// Seq 3 (an error) is lost on the way; seq 4 brings it.
	apply(`[{"type":"error","payload":{"code":"E_X"}},{"type":"progress","payload":{"processedCount":2}}]`, func(seq int64) bool { return seq != 3 })
	expect(4)

	// Node 1 loses NATS; node 2 goes on, and ends the job.
	px.Close()
	deadline := time.Now().Add(10 * time.Second)
	for nc1.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("node 1 still connected")
		}
		time.Sleep(10 * time.Millisecond) // polling the client's state; no signal to wait on
	}
	apply(`[{"type":"progress","payload":{"processedCount":3}},{"type":"error","payload":{"code":"E_Y"}},{"type":"completed"}]`, all)
	if px, err = netsim.Start(addr, target, netsim.Profile{}); err != nil {
		t.Fatal(err)
	}
	expect(7)
	if got := strings.Join(seen, " "); got != "job_started job_progress error job_progress job_progress error job_completed" {
		t.Fatalf("delivered %s", got)
	}
}
