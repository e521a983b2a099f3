package hub_test

import (
	"testing"

	"github.com/jobcast/jobcast"
)

// TestLiveJobs counts jobs, not connections: two watchers of one job and
// one of another are two live jobs; a job stays while it has a watcher
// and leaves the count with its last one.
func TestLiveJobs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	a, b := e.createJob(t), e.createJob(t)
	if n := e.srv.Hub.LiveJobs(); n != 0 {
		t.Fatalf("LiveJobs = %d before any connection, want 0", n)
	}
	a1, _ := e.open(t, a)
	e.open(t, a)
	b1, _ := e.open(t, b)
	if n := e.srv.Hub.LiveJobs(); n != 2 {
		t.Errorf("LiveJobs = %d with two watchers of one job and one of another, want 2", n)
	}
	b1.c.Close()
	waitFor(t, "b's watcher to go", func() bool { return e.srv.Hub.LiveJobs() == 1 })
	a1.c.Close()
	waitFor(t, "a's first watcher to go", func() bool { return e.srv.Hub.ConnCount() == 1 })
	if n := e.srv.Hub.LiveJobs(); n != 1 {
		t.Errorf("LiveJobs = %d with one of a's two watchers left, want 1", n)
	}
}
