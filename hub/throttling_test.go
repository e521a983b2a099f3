package hub_test

import (
	"slices"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

func TestThrottle(t *testing.T) {
	t.Parallel()
	const window = 500 * time.Millisecond
	e := newEnv(t, jobcast.Config{Throttle: window})
	tk := e.createJob(t)
	c, r := e.open(t, tk)
	if r.ThrottleMs != 500 {
		t.Fatalf("throttleMs = %d", r.ThrottleMs)
	}
	// The first progress goes at once, the rest of the window's are held.
	e.send(t, tk.JobID, started(), progress(1), progress(2), progress(3))
	e.send(t, tk.JobID, progress(4), progress(5))
	got := c.barrier()
	if len(got) != 2 || got[0].Type != protocol.TypeJobStarted || processed(t, got[1]) != 1 {
		t.Fatalf("first window sent %v, want started and progress 1", types(got))
	}
	// The latest goes out when the window ends, and not before.
	e.clock.Advance(window - time.Millisecond)
	c.expectNothing()
	e.clock.Advance(time.Millisecond)
	got = c.barrier()
	if len(got) != 1 || processed(t, got[0]) != 5 || got[0].Seq != 6 {
		t.Fatalf("after the window: %v, want progress 5 (seq 6)", types(got))
	}
	// Nothing is held: the window passes quietly.
	e.clock.Advance(window)
	c.expectNothing()
	// After a quiet window the next progress goes at once again.
	e.send(t, tk.JobID, progress(6))
	if got := c.barrier(); len(got) != 1 || processed(t, got[0]) != 6 {
		t.Fatalf("after a quiet window: %v", types(got))
	}
	// One just after it is held for the rest of the window, no longer.
	e.clock.Advance(100 * time.Millisecond)
	e.send(t, tk.JobID, progress(7))
	c.expectNothing()
	e.clock.Advance(window - 100*time.Millisecond)
	if got := c.barrier(); len(got) != 1 || processed(t, got[0]) != 7 {
		t.Fatalf("held progress: %v", types(got))
	}

	// An error flushes the held progress first and is not throttled.
	e.send(t, tk.JobID, progress(8), progress(9), errorEv(protocol.ErrGeminiTimeout), progress(10))
	got = c.barrier()
	if want := []string{"job_progress#10", "error#11"}; !slices.Equal(types(got), want) {
		t.Fatalf("error flush: got %v, want %v", types(got), want)
	}
	// Errors back to back all go.
	e.send(t, tk.JobID, errorEv("E_A"), errorEv("E_B"), errorEv("E_C"))
	if got := c.barrier(); len(got) != 4 || processed(t, got[0]) != 10 {
		t.Fatalf("errors: %v, want held progress 10 then three errors", types(got))
	}

	// The terminal frame flushes held progress and goes at once, then 1000.
	e.send(t, tk.JobID, progress(11), progress(12))
	e.send(t, tk.JobID, completed())
	want := []string{"job_progress#17", "job_completed#18"}
	for _, w := range want {
		if f := c.next(); f.closed != nil || types([]frame{f})[0] != w {
			t.Fatalf("got %v, want %s", types([]frame{f}), w)
		}
	}
	c.expectClose(protocol.CloseJobFinished)
}

// The throttled count of a connection says how many progress frames it
// skipped.
func TestThrottledCount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{Throttle: time.Second})
	tk := e.createJob(t)
	c, _ := e.open(t, tk)
	e.send(t, tk.JobID, progress(1), progress(2), progress(3), progress(4), progress(5), progress(6))
	if got := c.barrier(); len(got) != 1 {
		t.Fatalf("sent %v at once", types(got))
	}
	e.clock.Advance(time.Second)
	if got := c.barrier(); len(got) != 1 || processed(t, got[0]) != 6 {
		t.Fatalf("sent %v after the window", types(got))
	}
	if info := e.connection(t, tk.JobID); info.ThrottledCount != 4 {
		t.Errorf("throttledCount = %d, want 4", info.ThrottledCount)
	}
}

func TestThrottleDisabled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{ThrottleDisabled: true})
	tk := e.createJob(t)
	c, r := e.open(t, tk)
	if r.ThrottleMs != 0 {
		t.Errorf("throttleMs = %d, want 0", r.ThrottleMs)
	}
	e.send(t, tk.JobID, progress(1), progress(2), progress(3), progress(4))
	e.send(t, tk.JobID, progress(5))
	if got := seqs(c.barrier()); !slices.Equal(got, []int64{1, 2, 3, 4, 5}) {
		t.Errorf("seqs = %v, want all five", got)
	}
	if info := e.connection(t, tk.JobID); info.ThrottledCount != 0 {
		t.Errorf("throttledCount = %d", info.ThrottledCount)
	}
}

// Progress held after an error waits a full window from the progress frame
// the error flushed, not only until the timer armed before it.
func TestThrottleAfterError(t *testing.T) {
	t.Parallel()
	const window = 500 * time.Millisecond
	e := newEnv(t, jobcast.Config{Throttle: window})
	tk := e.createJob(t)
	c, _ := e.open(t, tk)
	e.send(t, tk.JobID, progress(1)) // sent at 0
	e.clock.Advance(100 * time.Millisecond)
	e.send(t, tk.JobID, progress(2)) // held, timer due at 500ms
	e.clock.Advance(100 * time.Millisecond)
	e.send(t, tk.JobID, errorEv(protocol.ErrGeminiTimeout)) // flushes 2 at 200ms
	if got := types(c.barrier()); !slices.Equal(got, []string{"job_progress#1", "job_progress#2", "error#3"}) {
		t.Fatalf("got %v", got)
	}
	e.clock.Advance(100 * time.Millisecond)
	e.send(t, tk.JobID, progress(4)) // held at 300ms
	e.clock.Advance(400*time.Millisecond - time.Millisecond)
	c.expectNothing() // not at 500ms, when the old timer was due
	e.clock.Advance(time.Millisecond)
	if got := c.barrier(); len(got) != 1 || processed(t, got[0]) != 4 {
		t.Fatalf("at 700ms got %v, want progress 4", types(got))
	}
}
