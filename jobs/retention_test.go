package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/protocol"
)

// sweepStore counts DeleteFinishedBefore calls and their cutoffs.
type sweepStore struct {
	jobcast.JobStore
	fail    error
	mu      sync.Mutex
	cutoffs []time.Time
}

func (s *sweepStore) DeleteFinishedBefore(ctx context.Context, t time.Time) (int, error) {
	s.mu.Lock()
	s.cutoffs = append(s.cutoffs, t)
	s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	return s.JobStore.DeleteFinishedBefore(ctx, t)
}

func (s *sweepStore) sweeps() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.cutoffs...)
}

// finishedJob stores a job that finished at at (or a running one when at is
// zero).
func finishedJob(t *testing.T, s jobcast.JobStore, id string, at time.Time) {
	t.Helper()
	job := &jobcast.Job{JobState: protocol.JobState{JobID: id, Pipeline: "p", Status: protocol.StatusPending, CreatedAt: t0}}
	if err := s.CreateJob(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	if at.IsZero() {
		return
	}
	prev := job.Rev
	msgs, err := jobcast.ApplyEvents(job, []protocol.ProducerEvent{{Type: protocol.EventCompleted, Payload: json.RawMessage(`{}`)}}, jobcast.NewCatalog(nil), at)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateJob(context.Background(), job, prev, msgs); err != nil {
		t.Fatal(err)
	}
}

func exists(t *testing.T, s jobcast.JobStore, id string) bool {
	t.Helper()
	_, err := s.GetJob(context.Background(), id)
	if err != nil && !errors.Is(err, jobcast.ErrJobNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func TestRetentionSweep(t *testing.T) {
	t.Parallel()
	const week = 7 * 24 * time.Hour
	now := t0.Add(30 * 24 * time.Hour)
	store := inmem.NewJobStore()
	finishedJob(t, store, "old", now.Add(-8*24*time.Hour))
	finishedJob(t, store, "just-expired", now.Add(-week-time.Millisecond))
	finishedJob(t, store, "at-window", now.Add(-week))
	finishedJob(t, store, "recent", now.Add(-6*24*time.Hour))
	finishedJob(t, store, "running", time.Time{})

	r := jobs.NewRetention(store, clocktest.New(now), discardLog(), week)
	r.Sweep(context.Background())
	want := map[string]bool{"old": false, "just-expired": false, "at-window": true, "recent": true, "running": true}
	for id, kept := range want {
		if got := exists(t, store, id); got != kept {
			t.Errorf("after sweep job %s exists=%v, want %v", id, got, kept)
		}
	}
}

func TestRetentionSweepFailureIsLogged(t *testing.T) {
	t.Parallel()
	logs := &recordingHandler{}
	store := &sweepStore{JobStore: inmem.NewJobStore(), fail: errors.New("disk full")}
	r := jobs.NewRetention(store, clocktest.New(t0), slogWith(logs), time.Hour)
	r.Sweep(context.Background())
	if recs := logs.records(); len(recs) != 1 || recs[0] != "WARN retention sweep failed" {
		t.Fatalf("log records %q, want one sweep warning", recs)
	}
}

func TestRetentionStartStop(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(t0)
	store := &sweepStore{JobStore: inmem.NewJobStore()}
	keep := 24 * time.Hour // sweeps every keep/24 = 1h
	finishedJob(t, store, "expired", t0.Add(-25*time.Hour))
	r := jobs.NewRetention(store, clock, discardLog(), keep)

	r.Start()
	if n := len(store.sweeps()); n != 0 {
		t.Fatalf("%d sweeps before the clock moved", n)
	}
	clock.Advance(0) // the first sweep runs at once
	sweeps := store.sweeps()
	if len(sweeps) != 1 || !sweeps[0].Equal(t0.Add(-keep)) {
		t.Fatalf("sweeps %v, want one with cutoff %v", sweeps, t0.Add(-keep))
	}
	if exists(t, store, "expired") {
		t.Fatal("the first sweep kept an expired job")
	}
	if p := clock.Pending(); p != 1 {
		t.Fatalf("%d timers armed after a sweep, want 1", p)
	}

	r.Start() // idempotent: no second sweep loop
	if p := clock.Pending(); p != 1 {
		t.Fatalf("%d timers armed after a second Start, want 1", p)
	}
	clock.Advance(59 * time.Minute)
	if n := len(store.sweeps()); n != 1 {
		t.Fatalf("%d sweeps before the interval passed, want 1", n)
	}
	clock.Advance(time.Minute)
	clock.Advance(time.Hour)
	sweeps = store.sweeps()
	if len(sweeps) != 3 || !sweeps[2].Equal(t0.Add(2*time.Hour-keep)) {
		t.Fatalf("sweeps %v, want 3, the last with cutoff %v", sweeps, t0.Add(2*time.Hour-keep))
	}

	r.Stop()
	r.Stop() // idempotent
	if p := clock.Pending(); p != 0 {
		t.Fatalf("%d timers armed after Stop", p)
	}
	clock.Advance(10 * time.Hour)
	r.Start() // a stopped service stays stopped
	clock.Advance(10 * time.Hour)
	if n := len(store.sweeps()); n != 3 {
		t.Fatalf("%d sweeps after Stop, want 3", n)
	}
}

func TestRetentionStopWithoutStart(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(t0)
	store := &sweepStore{JobStore: inmem.NewJobStore()}
	r := jobs.NewRetention(store, clock, discardLog(), time.Hour)
	r.Stop()
	r.Start()
	clock.Advance(time.Hour)
	if n := len(store.sweeps()); n != 0 {
		t.Fatalf("%d sweeps after Stop then Start", n)
	}
}

// With the real clock, Stop must stop the timer goroutines too (goleak in
// TestMain checks that none is left).
func TestRetentionRealClock(t *testing.T) {
	t.Parallel()
	store := &sweepStore{JobStore: inmem.NewJobStore()}
	r := jobs.NewRetention(store, jobcast.SystemClock{}, discardLog(), time.Hour)
	r.Start()
	r.Start()
	r.Stop()
	r.Stop()
	n := len(store.sweeps())
	if n > 1 {
		t.Fatalf("%d sweeps, want at most the first", n)
	}
}
