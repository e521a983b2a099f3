package inmem_test

import (
	"context"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/protocol"
)

func msg(jobID string, seq int64) *jobcast.Message {
	return &jobcast.Message{Envelope: protocol.Envelope{V: protocol.Version, Type: protocol.TypeJobProgress, JobID: jobID, Seq: seq}}
}

// recorder collects the seqs a subscriber receives.
type recorder struct{ seqs []int64 }

func (r *recorder) fn(m *jobcast.Message) { r.seqs = append(r.seqs, m.Seq) }

func subscribe(t *testing.T, b *inmem.Broker, jobID string, r *recorder) func() {
	t.Helper()
	cancel, err := b.Subscribe(jobID, r.fn)
	if err != nil {
		t.Fatalf("Subscribe(%s): %v", jobID, err)
	}
	return cancel
}

func publish(t *testing.T, b *inmem.Broker, jobID string, seqs ...int64) {
	t.Helper()
	var msgs []*jobcast.Message
	for _, s := range seqs {
		msgs = append(msgs, msg(jobID, s))
	}
	if err := b.Publish(context.Background(), jobID, msgs); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

func wantSeqs(t *testing.T, name string, got []int64, want ...int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s received %v, want %v", name, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s received %v, want %v", name, got, want)
		}
	}
}

func TestBroker(t *testing.T) {
	t.Parallel()
	b := inmem.NewBroker()
	publish(t, b, "job-a", 1) // nobody listens: dropped, no error

	var a1, a2, other recorder
	cancelA1 := subscribe(t, b, "job-a", &a1)
	cancelA2 := subscribe(t, b, "job-a", &a2)
	cancelOther := subscribe(t, b, "job-b", &other)
	defer cancelOther()

	publish(t, b, "job-a", 2, 3, 4)
	wantSeqs(t, "first subscriber", a1.seqs, 2, 3, 4)
	wantSeqs(t, "second subscriber", a2.seqs, 2, 3, 4)
	wantSeqs(t, "other job's subscriber", other.seqs)

	cancelA1()
	cancelA1() // idempotent
	publish(t, b, "job-a", 5)
	wantSeqs(t, "cancelled subscriber", a1.seqs, 2, 3, 4)
	wantSeqs(t, "remaining subscriber", a2.seqs, 2, 3, 4, 5)

	cancelA2()
	publish(t, b, "job-a", 6)
	wantSeqs(t, "second cancelled subscriber", a2.seqs, 2, 3, 4, 5)

	// Subscribing again after every subscriber left works.
	var again recorder
	defer subscribe(t, b, "job-a", &again)()
	publish(t, b, "job-a", 7)
	wantSeqs(t, "new subscriber", again.seqs, 7)
	publish(t, b, "job-b", 1)
	wantSeqs(t, "other job's subscriber", other.seqs, 1)
}
