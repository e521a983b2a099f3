package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

// Concurrent appends to one job must reach subscribers in seq order: a
// client drops any seq at or below the last it saw, so a reordered publish
// loses messages.
func TestConcurrentAppendsPublishInSeqOrder(t *testing.T) {
	t.Parallel()
	const workers, perWorker = 8, 40
	f := newFixture(t)
	f.create(t, "job-1")
	var (
		mu       sync.Mutex
		seqs     []int64
		outOfOrd int
	)
	cancel, err := f.broker.Subscribe("job-1", func(m *jobcast.Message) {
		mu.Lock()
		defer mu.Unlock()
		if n := len(seqs); n > 0 && m.Seq != seqs[n-1]+1 {
			outOfOrd++
		}
		seqs = append(seqs, m.Seq)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				ev := []protocol.ProducerEvent{{Type: protocol.EventError, Payload: json.RawMessage(fmt.Sprintf(`{"code":"E_W%d_%d"}`, w, i))}}
				if _, _, err := f.svc.Append(context.Background(), "job-1", ev); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(seqs) != workers*perWorker {
		t.Fatalf("subscriber saw %d messages, want %d", len(seqs), workers*perWorker)
	}
	if outOfOrd > 0 {
		t.Fatalf("%d messages published out of seq order", outOfOrd)
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("message %d has seq %d", i, s)
		}
	}
}
