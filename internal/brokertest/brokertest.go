// Package brokertest is the conformance suite for jobcast.Broker: every
// implementation runs RunBrokerTests from its own tests. Brokers may deliver
// asynchronously (NATS) or synchronously (inmem), so the suite waits for
// deliveries with a deadline and never sleeps.
package brokertest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

// deadline bounds every wait for a delivery.
const deadline = 10 * time.Second

// Nodes returns two brokers that share one fan-out, as two nodes of a
// cluster do: a message published on either reaches subscribers on both.
// A single-process broker returns itself twice. The brokers (and anything
// behind them) must be cleaned up by the factory through t.Cleanup.
type Nodes func(t *testing.T) (a, b jobcast.Broker)

// RunBrokerTests runs the conformance suite; newNodes is called once per
// test, and each test uses its own job ids.
func RunBrokerTests(t *testing.T, newNodes Nodes) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b jobcast.Broker)
	}{
		{"FanOutToEverySubscriberOfTheJob", testFanOut},
		{"AcrossNodes", testAcrossNodes},
		{"MessagesArriveWhole", testMessagesWhole},
		{"CancelStopsDelivery", testCancel},
		{"OrderUnderLoad", testOrderUnderLoad},
		{"ManyJobsConcurrently", testManyJobs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := newNodes(t)
			tt.fn(t, a, b)
		})
	}
}

// sink collects what one subscription receives.
type sink struct {
	mu   sync.Mutex
	msgs []*jobcast.Message
	more chan struct{} // signalled, without blocking, on every delivery
}

func newSink() *sink { return &sink{more: make(chan struct{}, 1)} }

func (s *sink) fn(m *jobcast.Message) {
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	s.mu.Unlock()
	select {
	case s.more <- struct{}{}:
	default:
	}
}

func (s *sink) snapshot() []*jobcast.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

func (s *sink) seqs() []int64 {
	var out []int64
	for _, m := range s.snapshot() {
		out = append(out, m.Seq)
	}
	return out
}

// waitFor waits until the sink holds n messages, failing t after the
// deadline, and fails t if it holds more.
func (s *sink) waitFor(t *testing.T, name string, n int) []*jobcast.Message {
	t.Helper()
	timeout := time.After(deadline)
	for {
		got := s.snapshot()
		if len(got) == n {
			return got
		}
		if len(got) > n {
			t.Fatalf("%s received %d messages, want %d", name, len(got), n)
		}
		select {
		case <-s.more:
		case <-timeout:
			t.Fatalf("%s received %d messages after %v, want %d", name, len(got), deadline, n)
		}
	}
}

func subscribe(t *testing.T, b jobcast.Broker, jobID string, s *sink) func() {
	t.Helper()
	cancel, err := b.Subscribe(jobID, s.fn)
	if err != nil {
		t.Fatalf("Subscribe(%s): %v", jobID, err)
	}
	t.Cleanup(cancel)
	return cancel
}

func message(t *testing.T, jobID string, seq int64, typ string) *jobcast.Message {
	t.Helper()
	payload := json.RawMessage(fmt.Sprintf(`{"processedCount":%d,"currentItem":"row \"%d\""}`, seq, seq))
	if typ == protocol.TypeError {
		payload = json.RawMessage(`{"code":"E_GEMINI_TIMEOUT","message":"timed out","retryable":true,"details":{"provider":"gemini"}}`)
	}
	m, err := jobcast.NewMessage(protocol.Envelope{
		V: protocol.Version, Type: typ, JobID: jobID, Pipeline: "csv_import",
		Seq: seq, TS: 1_764_133_200_000 + seq, Payload: payload,
	})
	if err != nil {
		t.Fatalf("NewMessage: %v", err)
	}
	return m
}

func publish(t *testing.T, b jobcast.Broker, jobID string, seqs ...int64) {
	t.Helper()
	var msgs []*jobcast.Message
	for _, s := range seqs {
		msgs = append(msgs, message(t, jobID, s, protocol.TypeJobProgress))
	}
	if err := b.Publish(context.Background(), jobID, msgs); err != nil {
		t.Fatalf("Publish(%s): %v", jobID, err)
	}
}

func wantSeqs(t *testing.T, name string, got []int64, want ...int64) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s received seqs %v, want %v", name, got, want)
	}
}

func testFanOut(t *testing.T, a, _ jobcast.Broker) {
	const job, other = "job.fan-out", "job.fan-out.other"
	publish(t, a, job, 1) // nobody listens: dropped, no error
	s1, s2, so := newSink(), newSink(), newSink()
	subscribe(t, a, job, s1)
	subscribe(t, a, job, s2)
	subscribe(t, a, other, so)
	publish(t, a, job, 2, 3, 4)
	publish(t, a, other, 1)
	wantSeqs(t, "other job's subscriber", seqsOf(so.waitFor(t, "other job's subscriber", 1)), 1)
	wantSeqs(t, "first subscriber", seqsOf(s1.waitFor(t, "first subscriber", 3)), 2, 3, 4)
	wantSeqs(t, "second subscriber", seqsOf(s2.waitFor(t, "second subscriber", 3)), 2, 3, 4)
}

func testAcrossNodes(t *testing.T, a, b jobcast.Broker) {
	const job = "job:across-nodes"
	onA, onB := newSink(), newSink()
	subscribe(t, a, job, onA)
	subscribe(t, b, job, onB)
	publish(t, a, job, 1, 2)
	publish(t, b, job, 3)
	onA.waitFor(t, "subscriber on A", 3)
	onB.waitFor(t, "subscriber on B", 3)
	// Each publisher's order holds everywhere; two publishers' messages
	// may interleave either way.
	for name, s := range map[string]*sink{"A": onA, "B": onB} {
		got := s.seqs()
		if i, j := slices.Index(got, 1), slices.Index(got, 2); i > j || !slices.Contains(got, 3) {
			t.Fatalf("subscriber on %s received %v, want 1 before 2, and 3", name, got)
		}
	}
}

// testMessagesWhole checks that a delivered message equals the published
// one: envelope fields, payload, the frame byte for byte, and an internal
// message's missing frame.
func testMessagesWhole(t *testing.T, a, b jobcast.Broker) {
	const job = "job-whole"
	s := newSink()
	subscribe(t, b, job, s)
	sent := []*jobcast.Message{
		message(t, job, 7, protocol.TypeJobProgress),
		message(t, job, 8, protocol.TypeError),
		{Envelope: protocol.Envelope{Type: jobcast.MessageRevoked, JobID: job, TS: 1_764_133_200_123}},
	}
	if err := a.Publish(context.Background(), job, sent); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got := s.waitFor(t, "subscriber", len(sent))
	for i, want := range sent {
		g := got[i]
		if g.V != want.V || g.Type != want.Type || g.JobID != want.JobID || g.Pipeline != want.Pipeline ||
			g.Seq != want.Seq || g.TS != want.TS || !jsonEqual(g.Payload, want.Payload) {
			t.Errorf("message %d = %+v (payload %s), want %+v (payload %s)", i, g.Envelope, g.Payload, want.Envelope, want.Payload)
		}
		if string(g.Frame) != string(want.Frame) || (g.Frame == nil) != (want.Frame == nil) {
			t.Errorf("message %d frame %q, want %q", i, g.Frame, want.Frame)
		}
	}
}

func testCancel(t *testing.T, a, b jobcast.Broker) {
	const job = "job-cancel"
	cancelled, kept := newSink(), newSink()
	cancel := subscribe(t, b, job, cancelled)
	subscribe(t, b, job, kept)
	publish(t, a, job, 1)
	cancelled.waitFor(t, "subscriber", 1)
	kept.waitFor(t, "other subscriber", 1)
	cancel()
	cancel() // idempotent
	publish(t, a, job, 2)
	// Once the kept subscriber has 2, the cancelled one would have had it.
	kept.waitFor(t, "remaining subscriber", 2)
	wantSeqs(t, "cancelled subscriber", cancelled.seqs(), 1)

	// Subscribing again after cancelling works.
	again := newSink()
	subscribe(t, b, job, again)
	publish(t, a, job, 3)
	wantSeqs(t, "new subscriber", seqsOf(again.waitFor(t, "new subscriber", 1)), 3)
	wantSeqs(t, "cancelled subscriber", cancelled.seqs(), 1)
}

func testOrderUnderLoad(t *testing.T, a, b jobcast.Broker) {
	const job, n, perPublish = "job-order", 2000, 10
	s := newSink()
	subscribe(t, b, job, s)
	for i := int64(1); i <= n; i += perPublish {
		var seqs []int64
		for j := i; j < i+perPublish; j++ {
			seqs = append(seqs, j)
		}
		publish(t, a, job, seqs...)
	}
	got := seqsOf(s.waitFor(t, "subscriber", n))
	for i, seq := range got {
		if seq != int64(i+1) {
			t.Fatalf("message %d has seq %d: order lost", i, seq)
		}
	}
}

func testManyJobs(t *testing.T, a, b jobcast.Broker) {
	const jobs, perJob = 20, 50
	sinks := make([]*sink, jobs)
	for i := range sinks {
		sinks[i] = newSink()
		subscribe(t, b, fmt.Sprintf("job-many-%d", i), sinks[i])
	}
	var wg sync.WaitGroup
	for i := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			job := fmt.Sprintf("job-many-%d", i)
			for seq := int64(1); seq <= perJob; seq++ {
				m := message(t, job, seq, protocol.TypeJobProgress)
				if err := a.Publish(context.Background(), job, []*jobcast.Message{m}); err != nil {
					t.Errorf("Publish(%s): %v", job, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for i, s := range sinks {
		got := s.waitFor(t, fmt.Sprintf("subscriber of job %d", i), perJob)
		for j, m := range got {
			if m.JobID != fmt.Sprintf("job-many-%d", i) || m.Seq != int64(j+1) {
				t.Fatalf("job %d message %d: %s seq %d", i, j, m.JobID, m.Seq)
			}
		}
	}
}

func seqsOf(msgs []*jobcast.Message) []int64 {
	var out []int64
	for _, m := range msgs {
		out = append(out, m.Seq)
	}
	return out
}

func jsonEqual(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}
