package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/duckdb"
)

// seedTelemetry writes a known event set into the data dir's telemetry
// store before a server opens it, and returns the start of its hour. The
// hour is recent (two hours ago, whole), so retention keeps it.
//
// j1 (wifi, csv_import): connected +1m, heartbeat +5m (40 ms), disconnected
// +20m (600 s); a producer error +35m. j2 (cellular, csv_import): connected
// +3m, heartbeat +10m (200 ms, sampled 1 in 10), disconnected +12m (300 s),
// reconnected +13m. j3 (wifi, ai_scan): an expired token +29m, connected
// +31m.
func seedTelemetry(t *testing.T, dir string) time.Time {
	t.Helper()
	h := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	at := func(m int) time.Time { return h.Add(time.Duration(m) * time.Minute) }
	wifi := func(m int, event, job, pipeline string) jobcast.Event {
		return jobcast.Event{TS: at(m), Event: event, Node: "seed", JobID: job, Pipeline: pipeline,
			NetworkType: "wifi", AppVersion: "2.0", SampleInterval: 1}
	}
	cell := func(m int, event string) jobcast.Event {
		e := wifi(m, event, "j2", "csv_import")
		e.NetworkType, e.AppVersion = "cellular", "1.0"
		return e
	}
	hb1, hb2 := wifi(5, jobcast.EventHeartbeat, "j1", "csv_import"), cell(10, jobcast.EventHeartbeat)
	hb1.RTTMs, hb2.RTTMs, hb2.SampleInterval = 40, 200, 10
	d1, d2 := wifi(20, jobcast.EventDisconnected, "j1", "csv_import"), cell(12, jobcast.EventDisconnected)
	d1.DurationMs, d2.DurationMs = 600_000, 300_000
	cf := wifi(29, jobcast.EventConnectFailed, "j3", "ai_scan")
	cf.Reason, cf.ErrorCode, cf.Retryable = jobcast.ReasonTokenExpired, "E_TOKEN_EXPIRED", true
	pe := jobcast.Event{TS: at(35), Event: jobcast.EventError, Node: "seed", JobID: "j1", Pipeline: "csv_import",
		ErrorCode: "E_GEMINI_TIMEOUT", Provider: "gemini", Retryable: true, SampleInterval: 1}
	events := []jobcast.Event{
		wifi(1, jobcast.EventConnected, "j1", "csv_import"), hb1, d1, pe,
		cell(3, jobcast.EventConnected), hb2, d2, cell(13, jobcast.EventReconnected),
		cf, wifi(31, jobcast.EventConnected, "j3", "ai_scan"),
	}
	ctx := context.Background()
	store, err := duckdb.Open(ctx, filepath.Join(dir, "telemetry.duckdb"), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Write(ctx, events); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	return h
}

// call sends an HTTP request with an optional bearer token and returns the
// status and body.
func call(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(data)
}

// sameJSON compares two JSON documents by value.
func sameJSON(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v: %s", err, want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("answer\n got: %s\nwant: %s", got, want)
	}
}

// fields splits output into lines of whitespace-separated fields, so that a
// table is compared without its column widths.
func fields(s string) [][]string {
	var out [][]string
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		out = append(out, strings.Fields(line))
	}
	return out
}

// TestQuery runs a real `jobcast serve` on a data dir with seeded telemetry
// and checks the query surfaces end to end: admin auth on every route,
// GraphQL and REST numbers from the DuckDB store, and the `jobcast query`
// CLI with its errors.
func TestQuery(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := seedTelemetry(t, dir)
	const apiKey = "query-test-key-0123456789"
	// No JOBCAST_ADMIN_TOKEN: the server generates one into the data dir,
	// and the CLI finds it there.
	stdout, stderr, _ := runMain(t, []string{"serve", "-addr", "127.0.0.1:0", "-data-dir", dir},
		map[string]string{"JOBCAST_API_KEYS": apiKey})
	base := stdout.waitFor(t, servingRE)[1]
	admin, err := (&queryFlags{dataDir: dir}).adminToken(mapEnv(nil))
	if err != nil {
		t.Fatalf("%v; stderr:\n%s", err, stderr.String())
	}
	from, to := h.Format(time.RFC3339), h.Add(time.Hour).Format(time.RFC3339)
	b1, b2 := from, h.Add(30*time.Minute).Format(time.RFC3339)

	t.Run("admin_auth", func(t *testing.T) {
		t.Parallel()
		for _, r := range []struct{ method, path, body string }{
			{"POST", "/graphql", `{"query": "{ live { connections } }"}`},
			{"GET", "/v1/metrics", ""},
			{"GET", "/v1/metrics/connections?last=1h", ""},
			{"POST", "/v1/sql", `{"query": "SELECT 1 AS one"}`},
		} {
			for _, tok := range []string{"", "wrong-admin-token", apiKey} {
				if status, body := call(t, r.method, base+r.path, tok, r.body); status != 401 || !strings.Contains(body, "E_UNAUTHORIZED") {
					t.Errorf("%s %s with token %q: %d %s, want 401", r.method, r.path, tok, status, body)
				}
			}
			if status, body := call(t, r.method, base+r.path, admin, r.body); status != 200 {
				t.Errorf("%s %s with the admin token: %d %s", r.method, r.path, status, body)
			}
		}
	})

	t.Run("graphql", func(t *testing.T) {
		t.Parallel()
		// connections: #1 #3 #31 connected + #13 reconnected = 4, 1 failed
		// (+29m): 4/5; durations 600 s and 300 s; one reconnect over j1 j2
		// j3. Heartbeats 40×1, 200×10: Σ 2040/11, p50 needs 5.5 → 200.
		q := fmt.Sprintf(`{
			connectionHealth(window: {from: %q, to: %q}) { connections connectFailures successRate avgDurationMs reconnectsPerSession }
			errors(window: {from: %q, to: %q}) { code provider retryable count sessions }
			heartbeatRtt(window: {from: %q, to: %q}, groupBy: [NETWORK_TYPE]) { group { networkType } avg p50 p99 samples }
			live { connections }
		}`, from, to, from, to, from, to)
		body, _ := json.Marshal(map[string]string{"query": q})
		status, got := call(t, "POST", base+"/graphql", admin, string(body))
		if status != 200 {
			t.Fatalf("%d %s", status, got)
		}
		sameJSON(t, got, `{"data": {
			"connectionHealth": [{"connections": 4, "connectFailures": 1, "successRate": 0.8, "avgDurationMs": 450000, "reconnectsPerSession": 0.3333333333333333}],
			"errors": [
				{"code": "E_GEMINI_TIMEOUT", "provider": "gemini", "retryable": true, "count": 1, "sessions": 1},
				{"code": "E_TOKEN_EXPIRED", "provider": "", "retryable": true, "count": 1, "sessions": 1}],
			"heartbeatRtt": [
				{"group": {"networkType": "cellular"}, "avg": 200, "p50": 200, "p99": 200, "samples": 10},
				{"group": {"networkType": "wifi"}, "avg": 40, "p50": 40, "p99": 40, "samples": 1}],
			"live": {"connections": 0}}}`)
	})

	t.Run("rest_metric", func(t *testing.T) {
		t.Parallel()
		// B1: cellular #3 #13 (2/2), wifi #1 and the failure +29m (1/2);
		// B2: wifi #31 (1/1); cellular has nothing to divide in B2.
		status, got := call(t, "GET", base+"/v1/metrics/connection_success_rate?from="+from+"&to="+to+"&groupBy=network_type&bucket=30m", admin, "")
		if status != 200 {
			t.Fatalf("%d %s", status, got)
		}
		sameJSON(t, got, fmt.Sprintf(`{"metric": "connection_success_rate", "unit": "ratio", "from": %q, "to": %q,
			"bucket": "30m", "groupBy": ["network_type"], "points": [
				{"time": %q, "group": {"network_type": "cellular"}, "value": 1, "weight": 2},
				{"time": %q, "group": {"network_type": "wifi"}, "value": 0.5, "weight": 2},
				{"time": %q, "group": {"network_type": "wifi"}, "value": 1, "weight": 1}]}`, from, to, b1, b1, b2))
		// Filters in either spelling; csv_import is j1 and j2.
		status, got = call(t, "GET", base+"/v1/metrics/connections?from="+from+"&to="+to+"&pipeline=csv_import&app_version=1.0", admin, "")
		if status != 200 {
			t.Fatalf("%d %s", status, got)
		}
		sameJSON(t, got, fmt.Sprintf(`{"metric": "connections", "unit": "count", "from": %q, "to": %q,
			"groupBy": [], "points": [{"time": %q, "value": 2, "weight": 2}]}`, from, to, from))
	})

	// run runs the CLI and returns its exit code, stdout and stderr.
	run := func(t *testing.T, env map[string]string, args ...string) (int, string, string) {
		t.Helper()
		var out, errb strings.Builder
		rc := Main(context.Background(), append([]string{"query"}, args...), mapEnv(env), &out, &errb)
		return rc, out.String(), errb.String()
	}
	server := "-server=" + base
	dataDir := "-data-dir=" + dir

	t.Run("cli_sql", func(t *testing.T) {
		t.Parallel()
		rc, out, errs := run(t, nil, "sql", server, dataDir, "SELECT event, count(*) AS n FROM events GROUP BY 1 ORDER BY 1")
		if rc != 0 {
			t.Fatalf("rc %d: %s", rc, errs)
		}
		want := [][]string{{"event", "n"}, {"connect_failed", "1"}, {"connected", "3"}, {"disconnected", "2"},
			{"error", "1"}, {"heartbeat", "2"}, {"reconnected", "1"}, {"(6", "rows)"}}
		if got := fields(out); !reflect.DeepEqual(got, want) {
			t.Errorf("output:\n%s\nwant fields %v", out, want)
		}
		// The flags may follow the SQL; -json prints the server's answer.
		rc, out, errs = run(t, map[string]string{"JOBCAST_DATA_DIR": dir}, "sql", "SELECT sum(sample_interval) AS w, NULL AS nothing FROM events WHERE event = 'heartbeat'", server, "-json")
		if rc != 0 {
			t.Fatalf("rc %d: %s", rc, errs)
		}
		var resp struct {
			Columns []string
			Data    []map[string]any
			Rows    int
		}
		if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Rows != 1 || resp.Data[0]["w"] != float64(11) || resp.Data[0]["nothing"] != nil {
			t.Errorf("-json output %v:\n%s", err, out)
		}
	})

	t.Run("cli_metric", func(t *testing.T) {
		t.Parallel()
		rc, out, errs := run(t, map[string]string{"JOBCAST_ADMIN_TOKEN": admin}, "metric", "connection_success_rate", server,
			"-from", from, "-to", to, "-group-by", "network_type", "-bucket", "30m", "-filter", "pipeline=csv_import", "-filter", "appVersion=2.0")
		if rc != 0 {
			t.Fatalf("rc %d: %s", rc, errs)
		}
		// csv_import on app 2.0 is j1 alone: connected in B1.
		want := [][]string{{"connection_success_rate", "(ratio),", from, "to", to},
			{"time", "network_type", "value", "weight"}, {b1, "wifi", "1", "1"}}
		if got := fields(out); !reflect.DeepEqual(got, want) {
			t.Errorf("output:\n%s\nwant fields %v", out, want)
		}
		rc, out, errs = run(t, nil, "metric", server, dataDir, "-from", from, "-to", to, "rtt_avg_ms", "-group-by", "pipeline,network_type")
		if rc != 0 {
			t.Fatalf("rc %d: %s", rc, errs)
		}
		want = [][]string{{"rtt_avg_ms", "(ms),", from, "to", to},
			{"pipeline", "network_type", "value", "weight"}, {"csv_import", "cellular", "200", "10"}, {"csv_import", "wifi", "40", "1"}}
		if got := fields(out); !reflect.DeepEqual(got, want) {
			t.Errorf("output:\n%s\nwant fields %v", out, want)
		}
	})

	t.Run("cli_metrics", func(t *testing.T) {
		t.Parallel()
		rc, out, errs := run(t, nil, "metrics", server, dataDir)
		if rc != 0 {
			t.Fatalf("rc %d: %s", rc, errs)
		}
		for _, want := range []string{
			"connection_success_rate (ratio)\n    Share of connection attempts that opened a WebSocket.\n    = (Σw[connected]",
			"rtt_p95_ms (ms)\n",
			"filter and group by: pipeline, app_version, os_version, network_type, device_model\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("cli_errors", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		down := "http://" + ln.Addr().String()
		ln.Close()
		for _, c := range []struct {
			name string
			env  map[string]string
			args []string
			rc   int
			msg  string
		}{
			{"server_down", nil, []string{"metrics", "-server", down, "-admin-token", "x"}, 1,
				"cannot reach the jobcast server at " + down + ": "},
			{"wrong_token", nil, []string{"sql", server, "-admin-token", "wrong", "SELECT 1"}, 1,
				"the server refused the admin token (missing or unknown token"},
			{"env_token_beats_file", map[string]string{"JOBCAST_ADMIN_TOKEN": "wrong"}, []string{"metrics", server, dataDir}, 1,
				"the server refused the admin token"},
			{"no_token", nil, []string{"metrics", server, "-data-dir", t.TempDir()}, 1,
				"no admin token: pass -admin-token, set JOBCAST_ADMIN_TOKEN, or point -data-dir at the server's data dir"},
			{"not_select", nil, []string{"sql", server, dataDir, "DELETE FROM events"}, 1,
				"only a single SELECT statement is allowed (400 E_BAD_REQUEST)"},
			{"bad_sql", nil, []string{"sql", server, dataDir, "SELECT nope FROM events"}, 1, "nope"},
			{"no_sql", nil, []string{"sql", server, dataDir}, 1, "give the SQL"},
			{"unknown_metric", nil, []string{"metric", "nope", server, dataDir}, 1,
				`unknown metric "nope": GET /v1/metrics lists them (404 E_NOT_FOUND)`},
			{"bad_window", nil, []string{"metric", "connections", server, dataDir, "-last", "soon"}, 1, `last "soon" is not a duration`},
			{"bad_dimension", nil, []string{"metric", "connections", server, dataDir, "-group-by", "color"}, 1, `unknown dimension "color"`},
			{"bad_filter_flag", nil, []string{"metric", "connections", server, dataDir, "-filter", "pipeline"}, 1, `filter "pipeline" is not DIMENSION=VALUE`},
			{"unknown_filter", nil, []string{"metric", "connections", server, dataDir, "-filter", "color=red"}, 1, `unknown parameter "color"`},
			{"two_names", nil, []string{"metric", "connections", "heartbeats", server, dataDir}, 1, "give one metric name"},
			{"bad_server", nil, []string{"metrics", "-server", "127.0.0.1:8080", "-admin-token", "x"}, 1, "is not an http:// or https:// URL"},
			{"unknown_subcommand", nil, []string{"tables"}, 1, `unknown subcommand "tables"`},
			{"no_subcommand", nil, nil, 1, "name a subcommand"},
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				rc, out, errs := run(t, c.env, c.args...)
				if rc != c.rc {
					t.Errorf("rc %d, want %d", rc, c.rc)
				}
				if !strings.Contains(errs, c.msg) {
					t.Errorf("stderr %q, want it to contain %q", errs, c.msg)
				}
				if out != "" {
					t.Errorf("stdout %q, want nothing", out)
				}
			})
		}
	})
}
