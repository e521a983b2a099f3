package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/jobcasttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (a answer) errCode() string {
	e, _ := a.body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func (a answer) errMessage() string {
	e, _ := a.body["error"].(map[string]any)
	msg, _ := e["message"].(string)
	return msg
}

func do(t *testing.T, method, url, token, body string, header http.Header) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(data)}
	_ = json.Unmarshal(data, &a.body)
	return a
}

// Every malformed producer request gets its own clear error, and changes
// nothing.
func TestProducerBadInput(t *testing.T) {
	t.Parallel()
	srv := jobcasttest.Start(t, jobcasttest.Options{Config: jobcast.Config{MaxBodyBytes: 4096}})
	key := jobcasttest.APIKey
	ok := do(t, "POST", srv.URL+"/v1/jobs", key, `{"jobId":"j1","pipeline":"csv_import"}`, nil)
	if ok.status != http.StatusCreated {
		t.Fatalf("create: %d %s", ok.status, ok.raw)
	}
	deep := strings.Repeat("[", 40) + strings.Repeat("]", 40)
	tests := []struct {
		name, method, path, token, body string
		status                          int
		code, msg                       string
	}{
		{"no key", "POST", "/v1/jobs", "", `{"pipeline":"x"}`, 401, "E_UNAUTHORIZED", "API key"},
		{"wrong key", "POST", "/v1/jobs", "wrong-key-0123456789", `{"pipeline":"x"}`, 401, "E_UNAUTHORIZED", "API key"},
		{"admin token is no producer key", "POST", "/v1/jobs", jobcasttest.AdminToken, `{"pipeline":"x"}`, 401, "E_UNAUTHORIZED", ""},
		{"malformed job", "POST", "/v1/jobs", key, `{"pipeline":`, 400, "E_BAD_REQUEST", "malformed job"},
		{"unknown field", "POST", "/v1/jobs", key, `{"pipeline":"x","total":5}`, 400, "E_BAD_REQUEST", `unknown field "total"`},
		{"no pipeline", "POST", "/v1/jobs", key, `{}`, 400, "E_BAD_REQUEST", "pipeline is required"},
		{"deep JSON", "POST", "/v1/jobs", key, `{"pipeline":"x","metadata":{"a":` + deep + `}}`, 400, "E_BAD_REQUEST", "nested deeper"},
		{"duplicate id", "POST", "/v1/jobs", key, `{"jobId":"j1","pipeline":"csv_import"}`, 409, "E_JOB_EXISTS", "already exists"},
		{"body too large", "POST", "/v1/jobs/j1/events", key, `{"type":"progress","payload":{"processedCount":1,"message":"` + strings.Repeat("x", 5000) + `"}}`, 413, "E_TOO_LARGE", "4096"},
		{"events: malformed", "POST", "/v1/jobs/j1/events", key, `{"type":`, 400, "E_BAD_REQUEST", "malformed JSON"},
		{"events: unknown type", "POST", "/v1/jobs/j1/events", key, `{"type":"paused"}`, 400, "E_BAD_REQUEST", `unknown event type "paused"`},
		{"events: bad in batch", "POST", "/v1/jobs/j1/events", key, `[{"type":"started"},{"type":"progress","payload":{}}]`, 400, "E_BAD_REQUEST", "event 1: progress payload needs processedCount"},
		{"events: unknown job", "POST", "/v1/jobs/nope/events", key, `{"type":"started"}`, 404, "E_JOB_NOT_FOUND", "job not found"},
		{"get: unknown job", "GET", "/v1/jobs/nope", key, "", 404, "E_JOB_NOT_FOUND", ""},
		{"token: unknown job", "POST", "/v1/jobs/nope/token", key, "", 404, "E_JOB_NOT_FOUND", ""},
		{"no such route", "GET", "/v2/things", key, "", 404, "E_NOT_FOUND", "no route"},
		{"admin: no token", "GET", "/v1/connections", "", "", 401, "E_UNAUTHORIZED", "admin token"},
		{"admin: producer key", "GET", "/v1/errors", key, "", 401, "E_UNAUTHORIZED", "admin token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := do(t, tt.method, srv.URL+tt.path, tt.token, tt.body, nil)
			if a.status != tt.status || a.errCode() != tt.code || !strings.Contains(a.errMessage(), tt.msg) {
				t.Fatalf("%d %s, want %d %s containing %q", a.status, a.raw, tt.status, tt.code, tt.msg)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
	t.Cleanup(func() {
		// Nothing above changed the job.
		a := do(t, "GET", srv.URL+"/v1/jobs/j1", key, "", nil)
		if a.status != 200 || a.body["seq"] != float64(0) || a.body["status"] != "pending" {
			t.Errorf("job changed by rejected requests: %s", a.raw)
		}
	})
}

func TestHealthAndDrain(t *testing.T) {
	t.Parallel()
	srv := jobcasttest.Start(t, jobcasttest.Options{})
	if a := do(t, "GET", srv.URL+"/healthz", "", "", nil); a.status != 200 || a.body["status"] != "ok" {
		t.Fatalf("healthz %d %s", a.status, a.raw)
	}
	if a := do(t, "GET", srv.URL+"/readyz", "", "", nil); a.status != 200 || a.body["status"] != "ready" {
		t.Fatalf("readyz %d %s", a.status, a.raw)
	}
	srv.API.Drain()
	if a := do(t, "GET", srv.URL+"/readyz", "", "", nil); a.status != 503 || a.body["status"] != "draining" {
		t.Errorf("readyz while draining %d %s", a.status, a.raw)
	}
	a := do(t, "POST", srv.URL+"/v1/jobs", jobcasttest.APIKey, `{"pipeline":"x"}`, nil)
	if a.status != 503 || a.errCode() != "E_UNAVAILABLE" || a.header.Get("Retry-After") == "" {
		t.Errorf("producer while draining: %d %s Retry-After=%q", a.status, a.raw, a.header.Get("Retry-After"))
	}
}

// Per-IP request limits count the client behind a trusted proxy, and only
// a trusted proxy can name the client or claim https.
func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		trusted []string
		// whether two requests with different X-Forwarded-For count as two
		// clients, and the websocketUrl scheme with X-Forwarded-Proto: https
		separate bool
		scheme   string
	}{
		{"proxy trusted", []string{"127.0.0.1"}, true, "wss://"},
		{"no proxy trusted", nil, false, "ws://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := jobcasttest.Start(t, jobcasttest.Options{Config: jobcast.Config{
				RequestsPerSecPerIP: 0.001, TrustedProxies: tc.trusted,
			}})
			xff := func(ip string) http.Header {
				return http.Header{"X-Forwarded-For": {ip}, "X-Forwarded-Proto": {"https"}}
			}
			first := do(t, "POST", srv.URL+"/v1/jobs", jobcasttest.APIKey, `{"pipeline":"x"}`, xff("198.51.100.1"))
			if first.status != 201 {
				t.Fatalf("first request: %d %s", first.status, first.raw)
			}
			if u, _ := first.body["websocketUrl"].(string); !strings.HasPrefix(u, tc.scheme) {
				t.Errorf("websocketUrl %q, want scheme %s", u, tc.scheme)
			}
			other := do(t, "GET", srv.URL+"/v1/jobs/nope", jobcasttest.APIKey, "", xff("198.51.100.2"))
			if got := other.status != 429; got != tc.separate {
				t.Errorf("second client: %d %s; separate=%v", other.status, other.raw, tc.separate)
			}
			same := do(t, "GET", srv.URL+"/v1/jobs/nope", jobcasttest.APIKey, "", xff("198.51.100.1"))
			if same.status != 429 || same.errCode() != "E_RATE_LIMITED" || same.header.Get("Retry-After") != "1" {
				t.Errorf("same client again: %d %s", same.status, same.raw)
			}
		})
	}
}

func TestPublicURL(t *testing.T) {
	t.Parallel()
	srv := jobcasttest.Start(t, jobcasttest.Options{Config: jobcast.Config{PublicURL: "https://progress.example.com/"}})
	a := do(t, "POST", srv.URL+"/v1/jobs", jobcasttest.APIKey, `{"jobId":"abc","pipeline":"x"}`, nil)
	if a.body["websocketUrl"] != "wss://progress.example.com/ws/progress?jobId=abc" {
		t.Errorf("websocketUrl = %v", a.body["websocketUrl"])
	}
	if a.header.Get("Location") != "/v1/jobs/abc" {
		t.Errorf("Location = %q", a.header.Get("Location"))
	}
}
