package jobs_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/internal/storetest"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/protocol"
)

// countingStore counts reads that reach the store and can hold one read
// until released, to interleave it with a write.
type countingStore struct {
	jobcast.JobStore
	mu     sync.Mutex
	reads  int
	hold   chan struct{} // when set, the next GetJob reads, then waits on it
	readIn chan struct{}
}

func (s *countingStore) GetJob(ctx context.Context, id string) (*jobcast.Job, error) {
	s.mu.Lock()
	s.reads++
	hold, in := s.hold, s.readIn
	s.hold = nil
	s.mu.Unlock()
	job, err := s.JobStore.GetJob(ctx, id)
	if hold != nil {
		close(in)
		<-hold
	}
	return job, err
}

func (s *countingStore) readCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

func newCached(t *testing.T, size int) (*countingStore, *jobs.CachedStore, *jobs.Service) {
	t.Helper()
	inner := inmem.NewJobStore()
	t.Cleanup(func() { inner.Close() })
	cs := &countingStore{JobStore: inner}
	c := jobs.NewCachedStore(cs, size)
	svc := jobs.New(c, inmem.NewBroker(), jobcast.NewCatalog(nil), clocktest.New(t0), discardLog())
	return cs, c, svc
}

func progress(n int) []protocol.ProducerEvent {
	return []protocol.ProducerEvent{{Type: protocol.EventProgress, Payload: []byte(`{"processedCount":` + strconv.Itoa(n) + `}`)}}
}

func TestCachedStoreServesCommittedState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cs, c, svc := newCached(t, 0)
	if _, err := svc.Create(ctx, jobs.CreateRequest{JobID: "j1", Pipeline: "p"}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if _, _, err := svc.Append(ctx, "j1", progress(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := cs.readCount(); got != 1 {
		t.Fatalf("store reads after create and 5 appends = %d, want 1 (the first append's)", got)
	}
	job, err := c.GetJob(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := cs.JobStore.GetJob(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	if job.Rev != stored.Rev || job.ProcessedCount != 5 || job.Seq != stored.Seq {
		t.Fatalf("cached rev %d processed %d seq %d, store rev %d seq %d", job.Rev, job.ProcessedCount, job.Seq, stored.Rev, stored.Seq)
	}
	// The caller owns what it got.
	job.ProcessedCount = 99
	again, _ := c.GetJob(ctx, "j1")
	if again.ProcessedCount != 5 {
		t.Fatalf("a caller's change leaked into the cache: %d", again.ProcessedCount)
	}
	if _, err := c.GetJob(ctx, "nope"); !errors.Is(err, jobcast.ErrJobNotFound) {
		t.Fatalf("missing job: %v", err)
	}
}

// TestCachedStoreSlowReadDoesNotRevert interleaves a cache miss's store read
// with an update: the older record read must not replace the newer one.
func TestCachedStoreSlowReadDoesNotRevert(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cs, c, svc := newCached(t, 1)
	for _, id := range []string{"j1", "j2"} {
		if _, err := svc.Create(ctx, jobs.CreateRequest{JobID: id, Pipeline: "p"}); err != nil {
			t.Fatal(err)
		}
	}
	hold, in := make(chan struct{}), make(chan struct{})
	cs.mu.Lock()
	cs.hold, cs.readIn = hold, in
	cs.mu.Unlock()
	done := make(chan *jobcast.Job)
	go func() {
		j, _ := c.GetJob(ctx, "j1") // reads rev of pending j1, then waits
		done <- j
	}()
	<-in
	if _, _, err := svc.Append(ctx, "j1", progress(7)); err != nil {
		t.Fatal(err)
	}
	// Evict j1's fresh entry (size 1), so only the counter protects it.
	if _, _, err := svc.Append(ctx, "j2", progress(1)); err != nil {
		t.Fatal(err)
	}
	close(hold)
	if old := <-done; old.ProcessedCount != 0 {
		t.Fatalf("the slow read returned %d, want the old 0", old.ProcessedCount)
	}
	got, err := c.GetJob(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ProcessedCount != 7 {
		t.Fatalf("after the slow read, processed = %d, want 7", got.ProcessedCount)
	}
}

// conflictStore fails the next UpdateJob with a conflict, as another writer
// would cause.
type conflictStore struct {
	jobcast.JobStore
	fail bool
}

func (s *conflictStore) UpdateJob(ctx context.Context, job *jobcast.Job, prev int64, msgs []*jobcast.Message) error {
	if s.fail {
		s.fail = false
		return jobcast.ErrConflict
	}
	return s.JobStore.UpdateJob(ctx, job, prev, msgs)
}

func TestCachedStoreForgetsAfterFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inner := inmem.NewJobStore()
	t.Cleanup(func() { inner.Close() })
	cf := &conflictStore{JobStore: inner}
	c := jobs.NewCachedStore(cf, 0)
	svc := jobs.New(c, inmem.NewBroker(), jobcast.NewCatalog(nil), clocktest.New(t0), discardLog())
	if _, err := svc.Create(ctx, jobs.CreateRequest{JobID: "j1", Pipeline: "p"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Append(ctx, "j1", progress(1)); err != nil {
		t.Fatal(err)
	}
	cf.fail = true // the service retries on a conflict; the retry reads the store
	if _, _, err := svc.Append(ctx, "j1", progress(2)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Append(ctx, "j1", []protocol.ProducerEvent{{Type: protocol.EventCompleted, Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	got, _ := c.GetJob(ctx, "j1")
	if got.ProcessedCount != 2 || got.Status != protocol.StatusCompleted {
		t.Fatalf("got %d %s", got.ProcessedCount, got.Status)
	}
	n, err := c.DeleteFinishedBefore(ctx, t0.Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("DeleteFinishedBefore = %d, %v", n, err)
	}
	if _, err := c.GetJob(ctx, "j1"); !errors.Is(err, jobcast.ErrJobNotFound) {
		t.Fatalf("deleted job still served: %v", err)
	}
}

// TestCachedStoreConformance runs the job store contract over the cache.
func TestCachedStoreConformance(t *testing.T) {
	t.Parallel()
	storetest.RunJobStoreTests(t, func(t *testing.T) jobcast.JobStore {
		return jobs.NewCachedStore(inmem.NewJobStore(), 0)
	})
}

// holdingUpdates commits an UpdateJob, then holds its return until released
// when hold is set, so two updates can return in the other order.
type holdingUpdates struct {
	jobcast.JobStore
	mu        sync.Mutex
	hold      chan struct{}
	committed chan struct{}
}

func (s *holdingUpdates) UpdateJob(ctx context.Context, job *jobcast.Job, prevRev int64, msgs []*jobcast.Message) error {
	s.mu.Lock()
	hold, done := s.hold, s.committed
	s.hold = nil
	s.mu.Unlock()
	err := s.JobStore.UpdateJob(ctx, job, prevRev, msgs)
	if hold != nil {
		close(done)
		<-hold
	}
	return err
}

// TestCachedStoreUpdatesReturningOutOfOrder: an update whose store call
// returns after a later revision's must not put its older record back.
func TestCachedStoreUpdatesReturningOutOfOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inner := inmem.NewJobStore()
	t.Cleanup(func() { inner.Close() })
	hs := &holdingUpdates{JobStore: inner}
	c := jobs.NewCachedStore(hs, 0)
	if err := c.CreateJob(ctx, &jobcast.Job{JobState: protocol.JobState{JobID: "j", Pipeline: "p", Status: protocol.StatusPending}}); err != nil {
		t.Fatal(err)
	}
	first, err := c.GetJob(ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	release, committed := make(chan struct{}), make(chan struct{})
	hs.mu.Lock()
	hs.hold, hs.committed = release, committed
	hs.mu.Unlock()

	older := first
	older.ProcessedCount = 1
	errc := make(chan error, 1)
	go func() { errc <- c.UpdateJob(ctx, older, first.Rev, nil) }()
	<-committed // the older update is in the store, its return held

	newer, err := inner.GetJob(ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	newer.ProcessedCount = 2
	if err := c.UpdateJob(ctx, newer, newer.Rev, nil); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	got, err := c.GetJob(ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	if got.ProcessedCount != 2 || got.Rev != newer.Rev {
		t.Fatalf("cache holds processed %d rev %d, want the later update's 2 rev %d", got.ProcessedCount, got.Rev, newer.Rev)
	}
}
