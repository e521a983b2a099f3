package telemetry_test

import (
	"context"
	"slices"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/telemetry"
)

// sizedStore is a memStore that wants at most max events per Write.
type sizedStore struct {
	memStore
	max int
}

func (s *sizedStore) MaxBatchSize() int { return s.max }

// A store that is a BatchSizer caps the batches a backlog is written in:
// by default, and when Options ask for more; Options may ask for less.
// Its size also lowers BatchSize when that is bigger.
func TestBatchSizerCapsBatches(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		storeMax  int
		opt       telemetry.Options
		record    int // events recorded while the first Write is stuck
		wantFirst int
		wantSizes []int // the backlog's batches
	}{
		{
			name: "default takes the store's", storeMax: 40,
			opt:    telemetry.Options{BufferSize: 1000, BatchSize: 10},
			record: 100, wantFirst: 10, wantSizes: []int{40, 40, 20},
		},
		{
			name: "a bigger option is capped", storeMax: 40,
			opt:    telemetry.Options{BufferSize: 1000, BatchSize: 10, MaxBatchSize: 500},
			record: 100, wantFirst: 10, wantSizes: []int{40, 40, 20},
		},
		{
			name: "a smaller option stands", storeMax: 40,
			opt:    telemetry.Options{BufferSize: 1000, BatchSize: 10, MaxBatchSize: 25},
			record: 100, wantFirst: 10, wantSizes: []int{25, 25, 25, 25},
		},
		{
			name: "BatchSize above the store's is lowered", storeMax: 8,
			opt:    telemetry.Options{BufferSize: 1000, BatchSize: 10},
			record: 20, wantFirst: 8, wantSizes: []int{8, 8, 4},
		},
		{
			name: "zero means no limit of the store's", storeMax: 0,
			opt:    telemetry.Options{BufferSize: 1000, BatchSize: 10},
			record: 100, wantFirst: 10, wantSizes: []int{100},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store := &sizedStore{max: tc.storeMax}
			store.block = make(chan struct{})
			store.entered = make(chan struct{}, 1)
			opt := tc.opt
			opt.FlushInterval = 1 << 62 // only a full batch wakes the writer
			r := telemetry.New(store, opt)
			r.Start()
			for range tc.wantFirst {
				r.Record(jobcast.Event{Event: jobcast.EventHeartbeat})
			}
			<-store.entered // the writer took the first batch and is stuck
			for range tc.record {
				r.Record(jobcast.Event{Event: jobcast.EventHeartbeat})
			}
			close(store.block)
			total := tc.wantFirst + tc.record
			waitFor(t, "the backlog", func() bool { return len(store.events()) == total })
			if err := r.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			store.mu.Lock()
			defer store.mu.Unlock()
			var sizes []int
			for _, b := range store.batches {
				sizes = append(sizes, len(b))
			}
			if want := append([]int{tc.wantFirst}, tc.wantSizes...); !slices.Equal(sizes, want) {
				t.Errorf("batch sizes %v, want %v", sizes, want)
			}
		})
	}
}
