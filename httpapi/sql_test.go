package httpapi_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/httpapi"
	"github.com/jobcast/jobcast/internal/jobcasttest"
	"github.com/jobcast/jobcast/protocol"
)

// echoStore answers every untrusted query with the text it got; the SQL
// sandbox itself is tested against DuckDB in package duckdb and end to end
// in cmd/jobcast.
type echoStore struct{ jobcast.TelemetryStore }

func (echoStore) Dialect() string { return "echo" }
func (echoStore) QueryUntrusted(_ context.Context, q string, l jobcast.QueryLimits) (*jobcast.Rows, error) {
	if q == "refuse" {
		return nil, jobcast.Errorf(protocol.ErrBadRequest, "only a single SELECT statement is allowed")
	}
	return &jobcast.Rows{Columns: []string{"query", "max_rows", "timeout_s"}, Rows: [][]any{{q, int64(l.MaxRows), l.Timeout.Seconds()}}}, nil
}

func TestSQLEndpoint(t *testing.T) {
	t.Parallel()
	srv := jobcasttest.Start(t, jobcasttest.Options{})
	api := httpapi.New(httpapi.Options{Config: srv.Config, Jobs: srv.Jobs, Hub: srv.Hub, Tokens: srv.Tokens,
		APIKeys: nil, Clock: jobcast.SystemClock{}, Log: nil, Telemetry: echoStore{}})
	ts := httptest.NewServer(api)
	defer ts.Close()
	admin := jobcasttest.AdminToken
	for _, tc := range []struct {
		name, token, body string
		status            int
		query             string
	}{
		{"plain text", admin, "SELECT 1", 200, "SELECT 1"},
		{"json", admin, `{"query":"SELECT 2"}`, 200, "SELECT 2"},
		{"no admin token", "", "SELECT 1", 401, ""},
		{"producer key", jobcasttest.APIKey, "SELECT 1", 401, ""},
		{"empty", admin, "  ", 400, ""},
		{"malformed json", admin, `{"query":`, 400, ""},
		{"refused", admin, "refuse", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, "POST", ts.URL+"/v1/sql", tc.token, tc.body, nil)
			if a.status != tc.status {
				t.Fatalf("%d %s, want %d", a.status, a.raw, tc.status)
			}
			if tc.status != 200 {
				return
			}
			data := a.body["data"].([]any)
			row := data[0].(map[string]any)
			if row["query"] != tc.query || row["max_rows"] != float64(10000) || row["timeout_s"] != float64(10) ||
				a.body["dialect"] != "echo" || a.body["rows"] != float64(1) || a.body["truncated"] != false {
				t.Errorf("answer %s", a.raw)
			}
		})
	}
}
