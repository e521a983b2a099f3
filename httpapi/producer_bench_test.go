package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/jobcasttest"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/sqlite"
)

// BenchmarkAppendEvents is one producer request of the throttled load
// scenario through the API handler, without the network: authentication,
// rate limit, parsing 20 progress events, applying them, the SQLite write
// (behind the job cache, as the embedded server has it), publishing to a
// job nobody watches and the 202 answer.
func BenchmarkAppendEvents(b *testing.B) {
	st, err := sqlite.OpenJobStore(context.Background(), filepath.Join(b.TempDir(), "jobcast.db"))
	if err != nil {
		b.Fatal(err)
	}
	// Limits as the load scenario sets them: the benchmark posts far more
	// than the defaults allow one address and key.
	cfg := jobcast.Config{RequestsPerSecPerIP: 1e9, ProducerEventsPerSecPerKey: 1e9}
	srv := jobcasttest.Start(b, jobcasttest.Options{Config: cfg, Store: jobs.NewCachedStore(st, 0)})
	job := srv.CreateJob(b)
	const perRequest = 20
	var body []byte
	n := 0
	next := func() []byte {
		body = append(body[:0], '[')
		for i := range perRequest {
			if i > 0 {
				body = append(body, ',')
			}
			n++
			body = append(body, `{"type":"progress","payload":{"processedCount":`...)
			body = strconv.AppendInt(body, int64(n), 10)
			body = append(body, `,"sentNs":1764133200123456789}}`...)
		}
		return append(body, ']')
	}
	path := "/v1/jobs/" + job.JobID + "/events"
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(next()))
		req.Header.Set("Authorization", "Bearer "+jobcasttest.APIKey)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.API.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perRequest), "ns/event")
}
