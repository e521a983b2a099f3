package loadgen

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobcast/jobcast/client"
)

// TestProducePacesJobs checks (with more producers than jobs: those have
// nothing to do and must end) that producers post each job's batch at the
// job's own phase within the batch interval, not all of a producer's jobs
// back to back: a job's first request never arrives before its phase, and
// the requests of one round are spread over the interval.
func TestProducePacesJobs(t *testing.T) {
	t.Parallel()
	const (
		nJobs    = 10
		interval = 400 * time.Millisecond
	)
	var (
		mu    sync.Mutex
		first = map[string]time.Duration{}
		start time.Time
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/jobs/"), "/events")
		mu.Lock()
		if _, ok := first[id]; !ok {
			first[id] = time.Since(start)
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, `{"accepted":1,"seq":1,"status":"running","durable":true}`)
	}))
	t.Cleanup(srv.Close)

	jobs := make([]ticket, nJobs)
	for i := range jobs {
		jobs[i].JobID = fmt.Sprintf("job-%d", i)
	}
	cfg := Config{Rate: 10, BatchInterval: interval, Producers: nJobs + 2, Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithTimeout(context.Background(), interval+interval/2)
	defer cancel()
	var st producerStats
	mu.Lock()
	start = time.Now()
	mu.Unlock()
	produce(ctx, client.NewProducer(srv.URL, "key"), jobs, cfg, &st)

	if st.errs.Load() != 0 {
		t.Fatalf("%d failed requests", st.errs.Load())
	}
	if n := st.requests.Load(); n < nJobs || st.rtt.Count() != uint64(n) {
		t.Errorf("%d requests, %d request latencies; want ≥ %d, one each", n, st.rtt.Count(), nJobs)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(first) != nJobs {
		t.Fatalf("%d of %d jobs got a request: %v", len(first), nJobs, first)
	}
	var latest time.Duration
	for i := range nJobs {
		at := first[jobs[i].JobID]
		phase := interval * time.Duration(i) / nJobs
		if at < phase {
			t.Errorf("job %d: first request %v after start, before its phase %v", i, at, phase)
		}
		latest = max(latest, at)
	}
	// Back to back, all ten would be in within a few milliseconds.
	if latest < interval*(nJobs-1)/nJobs {
		t.Errorf("last job's first request %v after start: not spread over the %v interval", latest, interval)
	}
}
