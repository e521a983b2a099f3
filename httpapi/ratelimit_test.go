package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/internal/jobcasttest"
)

const secondKey = "second-api-key-0123456789"

// progressBatch is a JSON batch of n progress events.
func progressBatch(n int) string {
	evs := make([]string, n)
	for i := range evs {
		evs[i] = fmt.Sprintf(`{"type":"progress","payload":{"processedCount":%d}}`, i+1)
	}
	return "[" + strings.Join(evs, ",") + "]"
}

// startLimited starts a server whose two API keys may post rate events per
// second each (burst twice that), on a manual clock.
func startLimited(t *testing.T, rate float64) (*jobcasttest.Server, *clocktest.Clock) {
	t.Helper()
	clock := clocktest.New(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	srv := jobcasttest.Start(t, jobcasttest.Options{Clock: clock, Config: jobcast.Config{
		APIKeys: []string{jobcasttest.APIKey, secondKey}, ProducerEventsPerSecPerKey: rate,
	}})
	return srv, clock
}

func createJob(t *testing.T, srv *jobcasttest.Server, key, id string) {
	t.Helper()
	if a := do(t, "POST", srv.URL+"/v1/jobs", key, `{"jobId":"`+id+`","pipeline":"csv_import"}`, nil); a.status != http.StatusCreated {
		t.Fatalf("create %s: %d %s", id, a.status, a.raw)
	}
}

// A batch over the key's remaining events is refused whole with 429 and a
// Retry-After that is the wait for enough tokens; the job is untouched.
// Events and job creations draw on one bucket per key; refills follow the
// clock.
func TestProducerEventRatePerKey(t *testing.T) {
	t.Parallel()
	srv, clock := startLimited(t, 10) // 10 events/s, burst 20
	key := jobcasttest.APIKey
	createJob(t, srv, key, "limited") // 1 event: 19 left
	events := srv.URL + "/v1/jobs/limited/events"
	if a := do(t, "POST", events, key, progressBatch(15), nil); a.status != http.StatusAccepted {
		t.Fatalf("15 of 19: %d %s", a.status, a.raw)
	}
	// 4 left; a batch of 10 needs 6 more: 0.6 s, answered as 1 s.
	a := do(t, "POST", events, key, progressBatch(10), nil)
	if a.status != http.StatusTooManyRequests || a.errCode() != "E_RATE_LIMITED" || a.header.Get("Retry-After") != "1" ||
		!strings.Contains(a.errMessage(), "none of the 10 events were applied") {
		t.Fatalf("batch over the rate: %d Retry-After %q %s", a.status, a.header.Get("Retry-After"), a.raw)
	}
	st := do(t, "GET", srv.URL+"/v1/jobs/limited", key, "", nil)
	if seq, _ := st.body["seq"].(float64); seq != 15 || st.body["processedCount"] != 15.0 {
		t.Fatalf("job after the refused batch: %s", st.raw)
	}
	// A batch that takes longer to refill says so.
	if a := do(t, "POST", events, key, progressBatch(20), nil); a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") != "2" {
		t.Fatalf("batch of 20 with 4 left: %d Retry-After %q", a.status, a.header.Get("Retry-After"))
	}
	// Above the burst no wait helps: 413, no Retry-After.
	if a := do(t, "POST", events, key, progressBatch(21), nil); a.status != http.StatusRequestEntityTooLarge || a.errCode() != "E_TOO_LARGE" ||
		a.header.Get("Retry-After") != "" || !strings.Contains(a.errMessage(), "split it") {
		t.Fatalf("batch above the burst: %d %q %s", a.status, a.header.Get("Retry-After"), a.raw)
	}
	clock.Advance(600 * time.Millisecond)
	if a := do(t, "POST", events, key, progressBatch(10), nil); a.status != http.StatusAccepted {
		t.Fatalf("after the refill: %d %s", a.status, a.raw)
	}
	// The bucket is empty: job creation counts too.
	if a := do(t, "POST", srv.URL+"/v1/jobs", key, `{"jobId":"one-more","pipeline":"csv_import"}`, nil); a.status != http.StatusTooManyRequests {
		t.Fatalf("create with an empty bucket: %d %s", a.status, a.raw)
	}
	if a := do(t, "GET", srv.URL+"/v1/jobs/one-more", key, "", nil); a.status != http.StatusNotFound {
		t.Fatalf("a refused create made the job: %d %s", a.status, a.raw)
	}
	// Reads are not events.
	if a := do(t, "GET", srv.URL+"/v1/jobs/limited", key, "", nil); a.status != http.StatusOK {
		t.Fatalf("read with an empty bucket: %d", a.status)
	}
}

// Keys are independent: one key that spent its events leaves another's
// untouched.
func TestProducerEventRateKeysIndependent(t *testing.T) {
	t.Parallel()
	srv, _ := startLimited(t, 5) // burst 10
	createJob(t, srv, jobcasttest.APIKey, "shared")
	events := srv.URL + "/v1/jobs/shared/events"
	if a := do(t, "POST", events, jobcasttest.APIKey, progressBatch(9), nil); a.status != http.StatusAccepted {
		t.Fatalf("first key: %d %s", a.status, a.raw)
	}
	if a := do(t, "POST", events, jobcasttest.APIKey, progressBatch(1), nil); a.status != http.StatusTooManyRequests {
		t.Fatalf("first key, spent: %d %s", a.status, a.raw)
	}
	if a := do(t, "POST", events, secondKey, progressBatch(10), nil); a.status != http.StatusAccepted {
		t.Fatalf("second key: %d %s", a.status, a.raw)
	}
}

// A negative rate turns the limit off; zero is the default, 100,000 events
// a second with a burst of 200,000, which the throttled load scenario's
// 40,000 events a second from one key fit under (batches are at most 1,000
// events; a few show it).
func TestProducerEventRateOffAndDefault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		rate       float64
		posts      int
		refusedAt  int // the post refused first; -1: none
		wantConfig float64
	}{
		{name: "limited", rate: 1000, posts: 3, refusedAt: 1, wantConfig: 1000}, // burst 2,000, creation took 1
		{name: "off", rate: -1, posts: 3, refusedAt: -1, wantConfig: -1},
		{name: "default", rate: 0, posts: 5, refusedAt: -1, wantConfig: 100000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := startLimited(t, tt.rate)
			if srv.Config.ProducerEventsPerSecPerKey != tt.wantConfig {
				t.Fatalf("rate after defaults %v, want %v", srv.Config.ProducerEventsPerSecPerKey, tt.wantConfig)
			}
			createJob(t, srv, jobcasttest.APIKey, "busy")
			batch := progressBatch(1000)
			for i := range tt.posts {
				a := do(t, "POST", srv.URL+"/v1/jobs/busy/events", jobcasttest.APIKey, batch, nil)
				want := http.StatusAccepted
				if i == tt.refusedAt {
					want = http.StatusTooManyRequests
				}
				if a.status != want {
					t.Fatalf("post %d of 1,000 events: %d, want %d (%s)", i, a.status, want, a.raw)
				}
				if i == tt.refusedAt {
					break
				}
			}
		})
	}
}
