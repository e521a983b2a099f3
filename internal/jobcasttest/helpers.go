package jobcasttest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/hub"
	"github.com/jobcast/jobcast/protocol"
)

// callTimeout bounds every helper's HTTP call.
const callTimeout = 15 * time.Second

func callCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	tb.Cleanup(cancel)
	return ctx
}

// CreateJob creates a csv_import job of 100 items and returns its ticket.
func (s *Server) CreateJob(tb testing.TB) *client.Ticket {
	tb.Helper()
	tk, err := s.Producer.CreateJob(callCtx(tb), client.CreateJobRequest{Pipeline: "csv_import", TotalCount: 100})
	if err != nil {
		tb.Fatalf("create job: %v", err)
	}
	return tk
}

// Send posts events to a job as one batch.
func (s *Server) Send(tb testing.TB, jobID string, evs ...protocol.ProducerEvent) {
	tb.Helper()
	if _, err := s.Producer.SendEvents(callCtx(tb), jobID, evs); err != nil {
		tb.Fatalf("send events: %v", err)
	}
}

// Connections lists the server's live connections of a job through the
// admin API, checking that the answer's count matches its list.
func (s *Server) Connections(tb testing.TB, jobID string) []hub.ConnInfo {
	tb.Helper()
	req, err := http.NewRequestWithContext(callCtx(tb), http.MethodGet, s.URL+"/v1/connections?jobId="+url.QueryEscape(jobID), nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("GET /v1/connections: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("GET /v1/connections: %d %s", resp.StatusCode, b)
	}
	var body struct {
		Connections []hub.ConnInfo `json:"connections"`
		Count       int            `json:"count"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		tb.Fatalf("decode connections: %v", err)
	}
	if body.Count != len(body.Connections) {
		tb.Fatalf("count %d but %d connections", body.Count, len(body.Connections))
	}
	return body.Connections
}

// Producer events for tests, sized for CreateJob's 100 items.

// Started is a started event with totalCount 100.
func Started() protocol.ProducerEvent {
	return client.NewEvent(protocol.EventStarted, map[string]any{"totalCount": 100})
}

// Progress is a progress event at n processed items.
func Progress(n int) protocol.ProducerEvent {
	return client.NewEvent(protocol.EventProgress, map[string]any{"processedCount": n})
}

// ErrorEvent is a non-terminal error with code.
func ErrorEvent(code string) protocol.ProducerEvent {
	return client.NewEvent(protocol.EventError, map[string]any{"code": code})
}

// Completed is a completed event with 100 successes.
func Completed() protocol.ProducerEvent {
	return client.NewEvent(protocol.EventCompleted, map[string]any{"successCount": 100})
}

// Failed is a failed event with code.
func Failed(code string) protocol.ProducerEvent {
	return client.NewEvent(protocol.EventFailed, map[string]any{"code": code})
}
