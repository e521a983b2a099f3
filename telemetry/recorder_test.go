package telemetry_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memStore is a TelemetryStore that keeps written batches, can fail, and can
// block its writer until released.
type memStore struct {
	mu      sync.Mutex
	batches [][]jobcast.Event
	fail    int           // fail this many more Writes
	block   chan struct{} // when set, Write waits for it to close
	entered chan struct{} // signalled when Write starts
	cutoffs []time.Time   // DeleteBefore calls
	rollups []time.Time   // Rollup calls
}

func (s *memStore) Write(ctx context.Context, evs []jobcast.Event) error {
	s.mu.Lock()
	block, entered := s.block, s.entered
	s.mu.Unlock()
	if entered != nil {
		select {
		case entered <- struct{}{}:
		default:
		}
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return errors.New("disk full")
	}
	s.batches = append(s.batches, append([]jobcast.Event(nil), evs...))
	return nil
}

func (s *memStore) events() []jobcast.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []jobcast.Event
	for _, b := range s.batches {
		out = append(out, b...)
	}
	return out
}

func (s *memStore) Query(context.Context, string, ...any) (*jobcast.Rows, error) { return nil, nil }
func (s *memStore) QueryUntrusted(context.Context, string, jobcast.QueryLimits) (*jobcast.Rows, error) {
	return nil, nil
}
func (s *memStore) DeleteBefore(_ context.Context, t time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutoffs = append(s.cutoffs, t)
	return 1, nil
}
func (s *memStore) Rollup(_ context.Context, before time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollups = append(s.rollups, before)
	return 1, nil
}
func (s *memStore) Dialect() string { return "mem" }
func (s *memStore) Close() error    { return nil }

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRecordStampsAndFlushesOnStop(t *testing.T) {
	t.Parallel()
	store := &memStore{}
	clock := clocktest.New(t0)
	r := telemetry.New(store, telemetry.Options{Node: "n1", Clock: clock, FlushInterval: time.Hour})
	r.Start()
	r.Record(jobcast.Event{Event: jobcast.EventConnected, JobID: "j1"})
	own := t0.Add(-time.Minute)
	r.Record(jobcast.Event{Event: jobcast.EventHeartbeat, JobID: "j1", Node: "other", TS: own, SampleInterval: 10, RTTMs: 42})
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := store.events()
	if len(got) != 2 {
		t.Fatalf("wrote %d events, want 2", len(got))
	}
	if e := got[0]; e.Node != "n1" || !e.TS.Equal(t0) || e.SampleInterval != 1 || e.JobID != "j1" {
		t.Errorf("first event not stamped: %+v", e)
	}
	if e := got[1]; e.Node != "other" || !e.TS.Equal(own) || e.SampleInterval != 10 || e.RTTMs != 42 {
		t.Errorf("second event's own fields were overwritten: %+v", e)
	}
	if st := r.Stats(); st.Recorded != 2 || st.Written != 2 || st.Dropped != 0 || st.Buffered != 0 {
		t.Errorf("stats %+v", st)
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// A full batch is written at once; a partial one when the flush interval
// passes on the recorder's clock.
func TestBatchAndInterval(t *testing.T) {
	t.Parallel()
	store := &memStore{}
	clock := clocktest.New(t0)
	r := telemetry.New(store, telemetry.Options{Clock: clock, BatchSize: 10, FlushInterval: time.Second})
	r.Start()
	defer r.Stop(context.Background())
	for i := 0; i < 20; i++ {
		r.Record(jobcast.Event{Event: jobcast.EventHeartbeat})
	}
	waitFor(t, "two full batches", func() bool { return len(store.events()) == 20 })
	for i := 0; i < 5; i++ {
		r.Record(jobcast.Event{Event: jobcast.EventHeartbeat})
	}
	if n := len(store.events()); n != 20 {
		t.Fatalf("a partial batch was written before the interval: %d events", n)
	}
	waitFor(t, "the flush timer", func() bool { return clock.Pending() > 0 })
	clock.Advance(time.Second)
	waitFor(t, "the partial batch", func() bool { return len(store.events()) == 25 })
}

// A writer stuck on a slow store never makes Record wait: once the ring is
// full, events are dropped and counted.
func TestFullBufferDropsWithoutBlocking(t *testing.T) {
	t.Parallel()
	store := &memStore{block: make(chan struct{}), entered: make(chan struct{}, 1)}
	r := telemetry.New(store, telemetry.Options{BufferSize: 100, BatchSize: 50, FlushInterval: time.Hour})
	r.Start()
	for i := 0; i < 50; i++ {
		r.Record(jobcast.Event{Event: jobcast.EventHeartbeat})
	}
	<-store.entered // the writer took 50 and is stuck in Write
	done := make(chan struct{})
	go func() {
		for i := 0; i < 1000; i++ {
			r.Record(jobcast.Event{Event: jobcast.EventHeartbeat})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Record blocked on a stuck store")
	}
	st := r.Stats()
	if st.Recorded != 150 || st.Dropped != 900 || st.Buffered != 100 {
		t.Fatalf("stats %+v, want 150 recorded, 900 dropped, 100 buffered", st)
	}
	close(store.block)
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(store.events()); n != 150 {
		t.Errorf("wrote %d events, want every recorded one (150)", n)
	}
}

// A writer that fell behind takes the backlog in batches of up to
// MaxBatchSize, bigger than BatchSize, so that a store with a cost per
// Write catches up.
func TestBacklogWritesBiggerBatches(t *testing.T) {
	t.Parallel()
	store := &memStore{block: make(chan struct{}), entered: make(chan struct{}, 1)}
	r := telemetry.New(store, telemetry.Options{BufferSize: 1000, BatchSize: 10, MaxBatchSize: 100, FlushInterval: time.Hour})
	r.Start()
	for range 10 {
		r.Record(jobcast.Event{Event: jobcast.EventHeartbeat})
	}
	<-store.entered // the writer took 10 and is stuck in Write
	for range 250 {
		r.Record(jobcast.Event{Event: jobcast.EventHeartbeat})
	}
	close(store.block)
	waitFor(t, "the backlog", func() bool { return len(store.events()) == 260 })
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	var sizes []int
	for _, b := range store.batches {
		sizes = append(sizes, len(b))
	}
	if want := []int{10, 100, 100, 50}; !slices.Equal(sizes, want) {
		t.Errorf("batch sizes %v, want %v", sizes, want)
	}
}

// A failing store is retried; a batch that keeps failing for RetryFor (here
// three tries: at 0, 100 ms and 500 ms) is counted lost and the recorder
// goes on.
func TestWriteFailures(t *testing.T) {
	t.Parallel()
	store := &memStore{fail: 1}
	r := telemetry.New(store, telemetry.Options{BatchSize: 5, FlushInterval: time.Hour, RetryFor: 500 * time.Millisecond})
	r.Start()
	for i := 0; i < 5; i++ {
		r.Record(jobcast.Event{Event: jobcast.EventError})
	}
	waitFor(t, "the retried batch", func() bool { return len(store.events()) == 5 })
	if st := r.Stats(); st.WriteErrors != 1 || st.Lost != 0 || st.Written != 5 {
		t.Fatalf("after one failure: %+v", st)
	}
	store.mu.Lock()
	store.fail = 3
	store.mu.Unlock()
	for i := 0; i < 5; i++ {
		r.Record(jobcast.Event{Event: jobcast.EventError})
	}
	waitFor(t, "the lost batch", func() bool { return r.Stats().Lost == 5 })
	for i := 0; i < 5; i++ {
		r.Record(jobcast.Event{Event: jobcast.EventError})
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.WriteErrors != 4 || st.Lost != 5 || st.Written != 10 || len(store.events()) != 10 {
		t.Fatalf("stats %+v, %d stored", st, len(store.events()))
	}
}

func TestStopWithoutStartFlushes(t *testing.T) {
	t.Parallel()
	store := &memStore{}
	r := telemetry.New(store, telemetry.Options{BatchSize: 3})
	for i := 0; i < 7; i++ {
		r.Record(jobcast.Event{Event: jobcast.EventConnected})
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(store.events()); n != 7 {
		t.Fatalf("flushed %d, want 7", n)
	}
}

func TestStopHonoursContext(t *testing.T) {
	t.Parallel()
	store := &memStore{block: make(chan struct{}), entered: make(chan struct{}, 1)}
	r := telemetry.New(store, telemetry.Options{BatchSize: 1, FlushInterval: time.Hour})
	r.Start()
	r.Record(jobcast.Event{Event: jobcast.EventConnected})
	<-store.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop = %v, want context.Canceled", err)
	}
	close(store.block)
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Retention sweeps at start and then every hour (for a 30-day window),
// deleting what is older than the window on the injected clock and having
// the rollups of the days that ended RollupDelay ago built.
func TestRetention(t *testing.T) {
	t.Parallel()
	store := &memStore{}
	clock := clocktest.New(t0)
	r := telemetry.NewRetention(store, clock, nil, 30*24*time.Hour)
	r.Start()
	r.Start() // idempotent
	clock.Advance(0)
	clock.Advance(time.Hour)
	r.Stop()
	r.Stop()
	clock.Advance(time.Hour) // stopped: no more sweeps
	store.mu.Lock()
	defer store.mu.Unlock()
	want := []time.Time{t0.Add(-30 * 24 * time.Hour), t0.Add(time.Hour - 30*24*time.Hour)}
	if len(store.cutoffs) != 2 || !store.cutoffs[0].Equal(want[0]) || !store.cutoffs[1].Equal(want[1]) {
		t.Fatalf("cutoffs %v, want %v", store.cutoffs, want)
	}
	wantR := []time.Time{t0.Add(-telemetry.RollupDelay), t0.Add(time.Hour - telemetry.RollupDelay)}
	if len(store.rollups) != 2 || !store.rollups[0].Equal(wantR[0]) || !store.rollups[1].Equal(wantR[1]) {
		t.Fatalf("rollups %v, want %v", store.rollups, wantR)
	}
}

// concStore is a memStore that asks for two writers; its first two Writes
// wait for each other, so the test fails unless two run at once.
type concStore struct {
	memStore
	entered atomic.Int32
	both    chan struct{}
}

func (s *concStore) Writers() int { return 2 }

func (s *concStore) Write(ctx context.Context, evs []jobcast.Event) error {
	switch s.entered.Add(1) {
	case 1:
		select {
		case <-s.both:
		case <-ctx.Done():
			return ctx.Err()
		}
	case 2:
		close(s.both)
	}
	return s.memStore.Write(ctx, evs)
}

func TestConcurrentWritersWriteEachEventOnce(t *testing.T) {
	t.Parallel()
	s := &concStore{both: make(chan struct{})}
	const n = 20000
	r := telemetry.New(s, telemetry.Options{BufferSize: n, BatchSize: 1000, MaxBatchSize: 1000, WriteTimeout: 5 * time.Second})
	for i := range n {
		r.Record(jobcast.Event{Event: jobcast.EventHeartbeat, DurationMs: int64(i)})
	}
	r.Start()
	// More while the writers write.
	for i := n; i < 2*n; i++ {
		for r.Stats().Buffered == n {
			runtime.Gosched()
		}
		r.Record(jobcast.Event{Event: jobcast.EventHeartbeat, DurationMs: int64(i)})
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	seen := make([]int, 2*n)
	for _, e := range s.events() {
		seen[e.DurationMs]++
	}
	for i, c := range seen {
		if c != 1 {
			t.Fatalf("event %d written %d times", i, c)
		}
	}
	if st := r.Stats(); st != (telemetry.Stats{Recorded: 2 * n, Written: 2 * n}) {
		t.Fatalf("stats %+v, want %d recorded and written, nothing else", st, 2*n)
	}
}
