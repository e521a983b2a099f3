package gql_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobcast/jobcast/gql"
	"github.com/jobcast/jobcast/hub"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/internal/syncbuf"
	"github.com/jobcast/jobcast/metrics"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeLive stands for the hub.
type fakeLive struct{}

func (fakeLive) ConnCount() int64 { return 3 }
func (fakeLive) Totals() hub.Totals {
	return hub.Totals{FramesSent: 1234, BytesSent: 5_000_000_000, ProgressThrottled: 77}
}

// newHandler returns the GraphQL handler over the fixture, with a clock at
// the end of the fixture's hour, so that "last: 1h" is exactly that hour.
func newHandler(t *testing.T) http.Handler {
	t.Helper()
	lib, _ := openFixture(t)
	h, err := gql.NewHandler(lib, fakeLive{}, gql.WithClock(clocktest.New(t0.Add(time.Hour))))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// response is a GraphQL answer.
type response struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Path       []any          `json:"path"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

// post sends body to h and returns the status and the decoded answer.
func post(t *testing.T, h http.Handler, body string) (int, response) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var resp response
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	return rec.Code, resp
}

// exec runs a GraphQL query with variables and returns the answer.
func exec(t *testing.T, h http.Handler, query string, vars map[string]any) response {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		t.Fatal(err)
	}
	status, resp := post(t, h, string(body))
	if status != http.StatusOK {
		t.Fatalf("status %d for %s", status, query)
	}
	return resp
}

// equalJSON compares two JSON documents by value: numbers are compared as
// the float64 they decode to, so "0.5714285714285714" is exactly 4/7.
func equalJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v: %s", err, want)
	}
	if !reflect.DeepEqual(g, w) {
		var gi, wi bytes.Buffer
		_ = json.Indent(&gi, got, "", "  ")
		_ = json.Indent(&wi, []byte(want), "", "  ")
		t.Errorf("data differs\n got: %s\nwant: %s", gi.String(), wi.String())
	}
}

// The three seed questions, as a dashboard or script would ask them, with
// answers computed by hand from the fixture (event numbers from
// fixture_test.go).
func TestSeedQuestions(t *testing.T) {
	t.Parallel()
	h := newHandler(t)
	for _, c := range []struct {
		name, query string
		vars        map[string]any
		want        string
	}{
		{
			// connected #1 #6 #15 + reconnected #9 = 4; connect_failed #14
			// #20 #21 = 3; success 4/7; disconnected durations #4 #8 #12 #19
			// = 4,200,000 / 4; one reconnect (#9) over jobs j1 j2 j3.
			name: "connection_health",
			query: `{ connectionHealth(window: {last: "1h"}) {
				group { networkType } connections connectFailures successRate avgDurationMs reconnectsPerSession } }`,
			want: `{"connectionHealth": [{"group": null, "connections": 4, "connectFailures": 3,
				"successRate": 0.5714285714285714, "avgDurationMs": 1050000, "reconnectsPerSession": 0.3333333333333333}]}`,
		},
		{
			// cellular: #6 #9 / #20 #21; durations #8 #12; j2 reconnected
			// once. wifi: #1 #15 / #14; durations #4 #19; no reconnect over
			// j1 j3.
			name: "connection_health_by_network",
			query: `query($w: Window) { connectionHealth(window: $w, groupBy: [NETWORK_TYPE]) {
				group { networkType pipeline } connections connectFailures successRate avgDurationMs reconnectsPerSession } }`,
			vars: map[string]any{"w": map[string]any{"from": "2026-01-05T10:00:00Z", "to": "2026-01-05T11:00:00Z"}},
			want: `{"connectionHealth": [
				{"group": {"networkType": "cellular", "pipeline": null}, "connections": 2, "connectFailures": 2,
				 "successRate": 0.5, "avgDurationMs": 1080000, "reconnectsPerSession": 1},
				{"group": {"networkType": "wifi", "pipeline": null}, "connections": 2, "connectFailures": 1,
				 "successRate": 0.6666666666666666, "avgDurationMs": 1020000, "reconnectsPerSession": 0}]}`,
		},
		{
			// A filter on the pipeline: ai_scan is j3 only (#14 #15 #19).
			name: "connection_health_ai_scan",
			query: `{ connectionHealth(filter: {pipeline: "ai_scan"}) {
				connections connectFailures successRate avgDurationMs reconnectsPerSession } }`,
			want: `{"connectionHealth": [{"connections": 1, "connectFailures": 1,
				"successRate": 0.5, "avgDurationMs": 900000, "reconnectsPerSession": 0}]}`,
		},
		{
			// A window with nothing in it: counts 0, ratios null.
			name: "connection_health_empty",
			query: `{ connectionHealth(window: {from: "2026-01-05T12:00:00Z", to: "2026-01-05T13:00:00Z"}) {
				connections connectFailures successRate avgDurationMs reconnectsPerSession } }`,
			want: `{"connectionHealth": [{"connections": 0, "connectFailures": 0,
				"successRate": null, "avgDurationMs": null, "reconnectsPerSession": null}]}`,
		},
		{
			// error #5 #11 (j1 j2); connect_failed #14 (E_TOKEN_EXPIRED),
			// #20 (E_JOB_NOT_FOUND), #21 (no code: its reason, no session);
			// error #18 (E_PROTOCOL). The job_failed #13 is a job summary,
			// not an error event. Ties: more sessions first, then by code.
			name:  "errors",
			query: `{ errors(window: {last: "1h"}) { code provider retryable count sessions } }`,
			want: `{"errors": [
				{"code": "E_GEMINI_TIMEOUT", "provider": "gemini", "retryable": true, "count": 2, "sessions": 2},
				{"code": "E_JOB_NOT_FOUND", "provider": "", "retryable": false, "count": 1, "sessions": 1},
				{"code": "E_PROTOCOL", "provider": "", "retryable": false, "count": 1, "sessions": 1},
				{"code": "E_TOKEN_EXPIRED", "provider": "", "retryable": true, "count": 1, "sessions": 1},
				{"code": "rate_limited", "provider": "", "retryable": true, "count": 1, "sessions": 0}]}`,
		},
		{
			// wifi: #14 and #18 (the producer's errors carry no network).
			name:  "errors_wifi_limit",
			query: `{ errors(filter: {networkType: "wifi"}, limit: 1) { code count sessions } }`,
			want:  `{"errors": [{"code": "E_PROTOCOL", "count": 1, "sessions": 1}]}`,
		},
		{
			// Heartbeats (rtt×w): #2 40×1 #3 60×1 #7 200×10 #10 300×10 #16
			// 20×1 #17 100×10; #23 at 11:00 is out. Σw 33, Σrtt·w 6120.
			// Cumulative weight in rtt order: 20:1 40:2 60:3 100:13 200:23
			// 300:33; p50 needs 16.5 → 200, p95 31.35 → 300, p99 32.67 →
			// 300. Unweighted, the median would be 80.
			name:  "heartbeat_rtt",
			query: `{ heartbeatRtt(window: {last: "1h"}) { group { pipeline } avg p50 p95 p99 samples } }`,
			want: `{"heartbeatRtt": [{"group": null, "avg": 185.45454545454547,
				"p50": 200, "p95": 300, "p99": 300, "samples": 33}]}`,
		},
		{
			// ai_scan #16 #17: 20:1 100:11, Σ 1020/11. csv_import #2 #3 #7
			// #10: 40:1 60:2 200:12 300:22, Σ 5100/22; p50 needs 11 → 200,
			// p95 20.9 → 300.
			name:  "heartbeat_rtt_by_pipeline",
			query: `{ heartbeatRtt(groupBy: [PIPELINE]) { group { pipeline } avg p50 p95 p99 samples } }`,
			want: `{"heartbeatRtt": [
				{"group": {"pipeline": "ai_scan"}, "avg": 92.72727272727273, "p50": 100, "p95": 100, "p99": 100, "samples": 11},
				{"group": {"pipeline": "csv_import"}, "avg": 231.8181818181818, "p50": 200, "p95": 300, "p99": 300, "samples": 22}]}`,
		},
		{
			// Two dimensions and a filter. cellular/1.0 is j2 (#7 #10: 200:10
			// 300:20, half is exactly 10 → 200), wifi/2.0 on Android is j3
			// (#16 #17). The connect_failed #20 #21 (cellular, 1.0) add no
			// heartbeats.
			name: "heartbeat_rtt_by_network_and_app",
			query: `{ heartbeatRtt(groupBy: [NETWORK_TYPE, APP_VERSION], filter: {osVersion: "Android 14"}) {
				group { networkType appVersion } p50 samples } }`,
			want: `{"heartbeatRtt": [
				{"group": {"networkType": "cellular", "appVersion": "1.0"}, "p50": 200, "samples": 20},
				{"group": {"networkType": "wifi", "appVersion": "2.0"}, "p50": 100, "samples": 11}]}`,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			resp := exec(t, h, c.query, c.vars)
			if len(resp.Errors) > 0 {
				t.Fatalf("errors: %+v", resp.Errors)
			}
			equalJSON(t, resp.Data, c.want)
		})
	}
}

// The generic metric query: any metric of the library, grouped, bucketed,
// filtered.
func TestMetric(t *testing.T) {
	t.Parallel()
	h := newHandler(t)
	for _, c := range []struct {
		name, query string
		vars        map[string]any
		want        string
	}{
		{
			// B1: cellular #6 #9, wifi #1; B2: wifi #15, cellular filled
			// with 0 (a count has a point in every bucket).
			name: "grouped_and_bucketed",
			query: `{ metric(name: CONNECTIONS, window: {last: "1h"}, groupBy: [NETWORK_TYPE], bucket: "30m") {
				name key unit from to bucket groupBy points { time group { networkType } value weight } } }`,
			want: `{"metric": {"name": "CONNECTIONS", "key": "connections", "unit": "count",
				"from": "2026-01-05T10:00:00Z", "to": "2026-01-05T11:00:00Z", "bucket": "30m", "groupBy": ["NETWORK_TYPE"],
				"points": [
					{"time": "2026-01-05T10:00:00Z", "group": {"networkType": "cellular"}, "value": 2, "weight": 2},
					{"time": "2026-01-05T10:00:00Z", "group": {"networkType": "wifi"}, "value": 1, "weight": 1},
					{"time": "2026-01-05T10:30:00Z", "group": {"networkType": "cellular"}, "value": 0, "weight": 0},
					{"time": "2026-01-05T10:30:00Z", "group": {"networkType": "wifi"}, "value": 1, "weight": 1}]}}`,
		},
		{
			// B1: ok #1 #6 #9, failed #14: 3/4; B2: ok #15, failed #20 #21:
			// 1/3.
			name: "ratio_bucketed",
			query: `query($name: MetricName!, $bucket: String) { metric(name: $name, bucket: $bucket,
				window: {from: "2026-01-05T10:00:00Z", to: "2026-01-05T11:00:00Z"}) { unit points { time group { pipeline } value weight } } }`,
			vars: map[string]any{"name": "CONNECTION_SUCCESS_RATE", "bucket": "30m"},
			want: `{"metric": {"unit": "ratio", "points": [
				{"time": "2026-01-05T10:00:00Z", "group": null, "value": 0.75, "weight": 4},
				{"time": "2026-01-05T10:30:00Z", "group": null, "value": 0.3333333333333333, "weight": 3}]}}`,
		},
		{
			// ai_scan: #14 failed in B1 (0/1), #15 connected in B2 (1/1).
			name: "ratio_filtered",
			query: `{ metric(name: CONNECTION_SUCCESS_RATE, bucket: "30m", filter: {pipeline: "ai_scan"}) {
				points { time value weight } } }`,
			want: `{"metric": {"points": [
				{"time": "2026-01-05T10:00:00Z", "value": 0, "weight": 1},
				{"time": "2026-01-05T10:30:00Z", "value": 1, "weight": 1}]}}`,
		},
		{
			// One point per group without a bucket; its time is from. An
			// empty filter value matches events without one: the job-level
			// events #5 #11 #13 and nothing else have no network type.
			name: "unbucketed",
			query: `{ metric(name: ERROR_RATE, filter: {networkType: ""}, groupBy: [PIPELINE]) {
				bucket points { time group { pipeline } value weight } } }`,
			want: `{"metric": {"bucket": null, "points": [
				{"time": "2026-01-05T10:00:00Z", "group": {"pipeline": "csv_import"}, "value": 1, "weight": 2}]}}`,
		},
		{
			// 7-day window ending at the fixture's hour: the same events,
			// plus #22 at 09:59:59.999.
			name:  "last_7d",
			query: `{ metric(name: CONNECTIONS, window: {last: "7d"}) { from to points { value } } }`,
			want: `{"metric": {"from": "2025-12-29T11:00:00Z", "to": "2026-01-05T11:00:00Z",
				"points": [{"value": 5}]}}`,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			resp := exec(t, h, c.query, c.vars)
			if len(resp.Errors) > 0 {
				t.Fatalf("errors: %+v", resp.Errors)
			}
			equalJSON(t, resp.Data, c.want)
		})
	}
}

func TestMetricsDefinitions(t *testing.T) {
	t.Parallel()
	h := newHandler(t)
	resp := exec(t, h, `{ metrics { name key unit description formula } }`, nil)
	if len(resp.Errors) > 0 {
		t.Fatalf("errors: %+v", resp.Errors)
	}
	var data struct {
		Metrics []struct{ Name, Key, Unit, Description, Formula string }
	}
	if err := json.Unmarshal(resp.Data, &data); err != nil {
		t.Fatal(err)
	}
	defs := metrics.Definitions()
	if len(data.Metrics) != len(defs) {
		t.Fatalf("%d metrics, want %d", len(data.Metrics), len(defs))
	}
	for i, d := range defs {
		got := data.Metrics[i]
		if got.Key != d.Name || got.Name != strings.ToUpper(d.Name) || got.Unit != d.Unit ||
			got.Description != d.Description || got.Formula != d.Formula {
			t.Errorf("metric %d = %+v, want %+v", i, got, d)
		}
	}
	// Every definition is queryable by its enum value.
	for _, d := range defs {
		resp := exec(t, h, `query($n: MetricName!) { metric(name: $n) { key } }`, map[string]any{"n": strings.ToUpper(d.Name)})
		if len(resp.Errors) > 0 {
			t.Errorf("metric %s: %+v", d.Name, resp.Errors)
		}
	}
}

func TestLive(t *testing.T) {
	t.Parallel()
	h := newHandler(t)
	resp := exec(t, h, `{ live { connections framesSent bytesSent throttled } }`, nil)
	if len(resp.Errors) > 0 {
		t.Fatalf("errors: %+v", resp.Errors)
	}
	equalJSON(t, resp.Data, `{"live": {"connections": 3, "framesSent": 1234, "bytesSent": 5000000000, "throttled": 77}}`)

	lib, _ := openFixture(t)
	noLive, err := gql.NewHandler(lib, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp = exec(t, noLive, `{ live { connections } }`, nil)
	if len(resp.Errors) != 1 || !strings.Contains(resp.Errors[0].Message, "not available") {
		t.Errorf("live without a source: %+v", resp.Errors)
	}
}

// Bad input comes back as GraphQL errors whose message says what was wrong.
func TestBadInput(t *testing.T) {
	t.Parallel()
	h := newHandler(t)
	for _, c := range []struct {
		name, query string
		vars        map[string]any
		msg         string // in the one error's message
		code        string // extensions.code, when a resolver refused
	}{
		{"unknown_metric", `{ metric(name: NOPE) { key } }`, nil, `Value "NOPE" does not exist in "MetricName" enum`, ""},
		{"metric_as_string", `{ metric(name: "connections") { key } }`, nil, `Enum "MetricName" cannot represent non-enum value: "connections"`, ""},
		{"unknown_metric_variable", `query($n: MetricName!) { metric(name: $n) { key } }`, map[string]any{"n": "connections"}, "MetricName", ""},
		{"unknown_dimension", `{ connectionHealth(groupBy: [COLOR]) { connections } }`, nil, `Value "COLOR" does not exist in "Dimension" enum`, ""},
		{"unknown_filter", `{ connectionHealth(filter: {color: "red"}) { connections } }`, nil, `"color"`, ""},
		{"unknown_field", `{ connectionHealth { colour } }`, nil, `Cannot query field "colour"`, ""},
		{"bad_last", `{ connectionHealth(window: {last: "banana"}) { connections } }`, nil, `last "banana" is not a duration`, "E_BAD_REQUEST"},
		{"negative_last", `{ connectionHealth(window: {last: "-1h"}) { connections } }`, nil, `must be positive`, "E_BAD_REQUEST"},
		{"empty_last", `{ connectionHealth(window: {last: ""}) { connections } }`, nil, `last is empty`, "E_BAD_REQUEST"},
		{"last_and_from", `{ connectionHealth(window: {last: "1h", from: "2026-01-05T10:00:00Z"}) { connections } }`, nil, "either last or from/to", "E_BAD_REQUEST"},
		{"to_without_from", `{ connectionHealth(window: {to: "2026-01-05T10:00:00Z"}) { connections } }`, nil, "to needs a from", "E_BAD_REQUEST"},
		{"empty_window", `{ connectionHealth(window: {from: "2026-01-05T11:00:00Z", to: "2026-01-05T10:00:00Z"}) { connections } }`, nil, "window is empty", "E_BAD_REQUEST"},
		{"bad_time", `{ connectionHealth(window: {from: "yesterday"}) { connections } }`, nil, `"yesterday" is not an RFC 3339 time`, ""},
		{"bad_time_variable", `query($w: Window) { connectionHealth(window: $w) { connections } }`, map[string]any{"w": map[string]any{"from": "5 Jan"}}, `"5 Jan" is not an RFC 3339 time`, ""},
		{"bad_bucket", `{ metric(name: CONNECTIONS, bucket: "5x") { key } }`, nil, `bucket "5x" is not a duration`, "E_BAD_REQUEST"},
		{"too_many_buckets", `{ metric(name: CONNECTIONS, window: {last: "30d"}, bucket: "1s") { key } }`, nil, "buckets of 1s in the window; at most 10000", "E_BAD_REQUEST"},
		{"limit_zero", `{ errors(limit: 0) { code } }`, nil, "limit 0 is out of range: 1 to 1000", "E_BAD_REQUEST"},
		{"limit_huge", `{ errors(limit: 1001) { code } }`, nil, "limit 1001 is out of range", "E_BAD_REQUEST"},
		{"syntax", `{ metric(name: CONNECTIONS { key } }`, nil, "syntax error", ""},
		{"mutation", `mutation { x }`, nil, "no mutations", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			resp := exec(t, h, c.query, c.vars)
			if len(resp.Errors) != 1 {
				t.Fatalf("%d errors, want 1: %+v", len(resp.Errors), resp.Errors)
			}
			e := resp.Errors[0]
			t.Logf("%s", e.Message)
			if !strings.Contains(e.Message, c.msg) {
				t.Errorf("message %q, want it to contain %q", e.Message, c.msg)
			}
			if c.code != "" && e.Extensions["code"] != c.code {
				t.Errorf("extensions %v, want code %s", e.Extensions, c.code)
			}
			if strings.Contains(strings.ToLower(e.Message), "duckdb") || strings.Contains(e.Message, "SELECT") {
				t.Errorf("message leaks internals: %q", e.Message)
			}
		})
	}
}

// An internal failure (here: a closed store) is logged and answered as
// "internal error", without its text.
func TestInternalErrorHidden(t *testing.T) {
	t.Parallel()
	lib, store := openFixture(t)
	logs := &syncbuf.Buffer{}
	h, err := gql.NewHandler(lib, fakeLive{}, gql.WithLog(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`{ connectionHealth { connections } }`,
		`{ errors { code } }`,
		`{ metric(name: RTT_P95_MS) { key } }`,
	} {
		resp := exec(t, h, q, nil)
		if len(resp.Errors) != 1 || resp.Errors[0].Message != "internal error" || resp.Errors[0].Extensions["code"] != "E_INTERNAL" {
			t.Errorf("%s: errors %+v, want one \"internal error\"", q, resp.Errors)
		}
		// The live figures do not need the store.
		if resp := exec(t, h, `{ live { connections } }`, nil); len(resp.Errors) > 0 {
			t.Errorf("live: %+v", resp.Errors)
		}
	}
	if !strings.Contains(logs.String(), "graphql query failed") {
		t.Errorf("internal errors were not logged:\n%s", logs.String())
	}
}

// The HTTP envelope: POST with JSON only, errors in GraphQL's shape.
func TestHTTP(t *testing.T) {
	t.Parallel()
	h := newHandler(t)
	for _, c := range []struct {
		name, method, body string
		status             int
		msg                string
	}{
		{"get", http.MethodGet, "", http.StatusMethodNotAllowed, "use POST"},
		{"not_json", http.MethodPost, "{ live { connections } }", http.StatusBadRequest, "malformed request"},
		{"no_query", http.MethodPost, `{"variables": {}}`, http.StatusBadRequest, "no query"},
		{"too_large", http.MethodPost, `{"query": "` + strings.Repeat("x", 2<<20) + `"}`, http.StatusRequestEntityTooLarge, "exceeds"},
		{"query_too_long", http.MethodPost, `{"query": "{ live { connections } }` + strings.Repeat(" ", 40<<10) + `"}`, http.StatusOK, "query length"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequestWithContext(context.Background(), c.method, "/graphql", strings.NewReader(c.body))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != c.status {
				t.Errorf("status %d, want %d", rec.Code, c.status)
			}
			var resp response
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatalf("answer is not JSON: %s", rec.Body.String())
			}
			if len(resp.Errors) != 1 || !strings.Contains(resp.Errors[0].Message, c.msg) {
				t.Errorf("errors %+v, want one containing %q", resp.Errors, c.msg)
			}
		})
	}
}
