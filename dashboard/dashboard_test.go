package dashboard_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/alerting"
	"github.com/jobcast/jobcast/dashboard"
	"github.com/jobcast/jobcast/gql"
	"github.com/jobcast/jobcast/hub"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/metrics"
	"github.com/jobcast/jobcast/protocol"
)

const adminToken = "dash-admin-token-0123456789"

// end is the fixed "now" of the unit tests.
var end = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)

// fakeLive stands for the hub.
type fakeLive struct{ conns []hub.ConnInfo }

func (f fakeLive) ConnCount() int64   { return int64(len(f.conns)) }
func (f fakeLive) Totals() hub.Totals { return hub.Totals{} }
func (f fakeLive) Connections(jobID string) []hub.ConnInfo {
	var out []hub.ConnInfo
	for _, c := range f.conns {
		if jobID == "" || c.JobID == jobID {
			out = append(out, c)
		}
	}
	return out
}

// fakeJobs knows one job.
type fakeJobs struct{}

func (fakeJobs) Get(_ context.Context, id string) (*jobcast.Job, error) {
	if id != "job-03" {
		return nil, jobcast.ErrJobNotFound
	}
	return &jobcast.Job{JobState: protocol.JobState{JobID: id, Pipeline: "ai_scan", Status: protocol.StatusFailed, Seq: 9}}, nil
}

// env is a dashboard over the fixture, with GraphQL over the same library
// and a clock at end.
type env struct {
	dash  *dashboard.Handler
	gql   http.Handler
	lib   *metrics.Library
	clock *clocktest.Clock
}

func newEnv(t *testing.T, mod func(*dashboard.Options)) *env {
	t.Helper()
	store := openStore(t, fixture(end))
	lib := metrics.New(store)
	clock := clocktest.New(end)
	live := fakeLive{conns: []hub.ConnInfo{{ConnectionID: "c1", JobID: "job-03", ConnectedAt: end.Add(-time.Minute)}}}
	opt := dashboard.Options{Metrics: lib, Events: store, Jobs: fakeJobs{}, Live: live, AdminToken: adminToken,
		Clock: clock, StreamInterval: 20 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&opt)
	}
	d, err := dashboard.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	g, err := gql.NewHandler(lib, live, gql.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	return &env{dash: d, gql: g, lib: lib, clock: clock}
}

// do sends a request to the dashboard; hdr are header pairs.
func (e *env) do(t *testing.T, method, target string, body io.Reader, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, body)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	e.dash.ServeHTTP(rec, req)
	return rec
}

func (e *env) overview(t *testing.T, query string) *dashboard.Overview {
	t.Helper()
	rec := e.do(t, http.MethodGet, "/dashboard/api/overview?"+query, nil, "Authorization", "Bearer "+adminToken)
	if rec.Code != http.StatusOK {
		t.Fatalf("overview?%s: %d %s", query, rec.Code, rec.Body)
	}
	var ov dashboard.Overview
	if err := json.Unmarshal(rec.Body.Bytes(), &ov); err != nil {
		t.Fatal(err)
	}
	return &ov
}

// graphql runs a query on the GraphQL handler and decodes its data.
func (e *env) graphql(t *testing.T, query string, vars map[string]any, out any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	rec := httptest.NewRecorder()
	e.gql.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body)))
	var resp struct {
		Data   json.RawMessage
		Errors []struct{ Message string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || len(resp.Errors) > 0 {
		t.Fatalf("graphql: %v %+v\n%s", err, resp.Errors, rec.Body)
	}
	if err := json.Unmarshal(resp.Data, out); err != nil {
		t.Fatal(err)
	}
}

func ptr(p *metrics.Point) *float64 {
	if p == nil {
		return nil
	}
	v := p.Value
	return &v
}

func eqValue(t *testing.T, what string, got, want *float64) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil:
		t.Errorf("%s = %v, want %v", what, fmtPtr(got), fmtPtr(want))
	case *got != *want:
		t.Errorf("%s = %v, want %v", what, *got, *want)
	}
}

func fmtPtr(p *float64) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}

// TestOverviewEqualsLibraryAndGraphQL checks every figure of the overview
// against the metrics library, and the headline figures against GraphQL,
// for the same window and filters.
func TestOverviewEqualsLibraryAndGraphQL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for _, c := range []struct {
		query   string
		filters map[string]string
	}{
		{"range=1h", nil},
		{"range=1h&networkType=wifi", map[string]string{"network_type": "wifi"}},
		{"range=24h&pipeline=ai_scan&osVersion=Android+12", map[string]string{"pipeline": "ai_scan", "os_version": "Android 12"}},
		{"range=7d&appVersion=3.4.0&pipeline=csv_import", map[string]string{"app_version": "3.4.0", "pipeline": "csv_import"}},
	} {
		t.Run(c.query, func(t *testing.T) {
			ov := e.overview(t, c.query)
			rng, _ := url.ParseQuery(c.query)
			from, to, bucket, err := dashboard.Window(rng.Get("range"), end)
			if err != nil {
				t.Fatal(err)
			}
			if !ov.From.Equal(from) || !ov.To.Equal(to) || !to.Equal(end) || ov.BucketMs != bucket.Milliseconds() {
				t.Fatalf("window %s..%s bucket %d, want %s..%s %s", ov.From, ov.To, ov.BucketMs, from, to, bucket)
			}
			compute := func(metric string, groupBy ...string) *metrics.Result {
				t.Helper()
				res, err := e.lib.Compute(context.Background(), metrics.Query{Metric: metric, From: from, To: to, Filters: c.filters, GroupBy: groupBy})
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			single := func(metric string) *float64 {
				r := compute(metric)
				if len(r.Points) == 0 {
					return nil
				}
				return ptr(&r.Points[0])
			}
			h := ov.Health
			if h.Overall.Connections != *single(metrics.Connections) || h.Overall.ConnectFailures != *single(metrics.ConnectFailures) {
				t.Errorf("connections %v/%v", h.Overall.Connections, h.Overall.ConnectFailures)
			}
			eqValue(t, "success rate", h.Overall.SuccessRate, single(metrics.ConnectionSuccessRate))
			eqValue(t, "avg duration", h.Overall.AvgDurationMs, single(metrics.AvgConnectionDurationMs))
			eqValue(t, "reconnects/session", h.Overall.ReconnectsPerSession, single(metrics.ReconnectsPerSession))
			eqValue(t, "error rate", ov.Errors.ErrorRate, single(metrics.ErrorRate))
			eqValue(t, "rtt avg", ov.Latency.Overall.Avg, single(metrics.RTTAvgMs))
			eqValue(t, "rtt p95", ov.Latency.Overall.P95, single(metrics.RTTP95Ms))
			eqValue(t, "rtt p99", ov.Latency.Overall.P99, single(metrics.RTTP99Ms))
			eqValue(t, "message rate", ov.Throughput.MessageRate, single(metrics.MessageRate))
			eqValue(t, "bytes/message", ov.Throughput.BytesPerMessage, single(metrics.BytesPerMessage))
			eqValue(t, "throttle rate", ov.Throughput.ThrottleRate, single(metrics.ThrottleRate))
			if h.LiveConnections != 1 || !reflect.DeepEqual(ov.LiveJobs, []string{"job-03"}) {
				t.Errorf("live %d %v", h.LiveConnections, ov.LiveJobs)
			}

			// Grouped figures.
			byNet := compute(metrics.ConnectionSuccessRate, "network_type")
			if len(h.ByNetworkType) != len(byNet.Points) {
				t.Errorf("%d network rows, want %d", len(h.ByNetworkType), len(byNet.Points))
			}
			for i, p := range byNet.Points {
				if i < len(h.ByNetworkType) && h.ByNetworkType[i].Group == p.Group["network_type"] {
					eqValue(t, "success rate of "+p.Group["network_type"], h.ByNetworkType[i].SuccessRate, ptr(&byNet.Points[i]))
				}
			}
			rttPipe := compute(metrics.RTTP95Ms, "pipeline")
			for i, p := range rttPipe.Points {
				if i >= len(ov.Latency.ByPipeline) || ov.Latency.ByPipeline[i].Group != p.Group["pipeline"] {
					t.Fatalf("latency rows %+v, want groups of %+v", ov.Latency.ByPipeline, rttPipe.Points)
				}
				eqValue(t, "p95 of "+p.Group["pipeline"], ov.Latency.ByPipeline[i].P95, ptr(&rttPipe.Points[i]))
			}
			for _, s := range ov.Segments {
				res := compute(metrics.ErrorRate, s.Dimension)
				want := map[string]metrics.Point{}
				for _, p := range res.Points {
					if p.Group[s.Dimension] != "" {
						want[p.Group[s.Dimension]] = p
					}
				}
				if len(s.Rows) != len(want) {
					t.Errorf("%s: %d rows, want %d", s.Dimension, len(s.Rows), len(want))
				}
				for _, r := range s.Rows {
					p := want[r.Value]
					eqValue(t, s.Dimension+"="+r.Value, r.ErrorRate, ptr(&p))
					if r.Sessions != p.Weight {
						t.Errorf("%s=%s sessions %v, want %v", s.Dimension, r.Value, r.Sessions, p.Weight)
					}
				}
			}
			started := compute(metrics.JobsStarted, "pipeline")
			if len(ov.Throughput.Pipelines) != len(started.Points) {
				t.Errorf("pipelines %+v, want %+v", ov.Throughput.Pipelines, started.Points)
			}
			for i, p := range started.Points {
				if i < len(ov.Throughput.Pipelines) && ov.Throughput.Pipelines[i].Started != p.Value {
					t.Errorf("%s started %v, want %v", p.Group["pipeline"], ov.Throughput.Pipelines[i].Started, p.Value)
				}
			}
			top, err := e.lib.TopErrors(context.Background(), metrics.Query{From: from, To: to, Filters: c.filters}, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(top) != len(ov.Errors.Top) {
				t.Fatalf("top errors %+v, want %+v", ov.Errors.Top, top)
			}
			for i, te := range top {
				got := ov.Errors.Top[i]
				if got.Code != te.Code || got.Provider != te.Provider || got.Retryable != te.Retryable || got.Count != te.Count || got.Sessions != te.Sessions {
					t.Errorf("top error %d = %+v, want %+v", i, got, te)
				}
			}
			trend, err := e.lib.Compute(context.Background(), metrics.Query{Metric: metrics.ErrorRate, From: from, To: to, Filters: c.filters, Bucket: bucket})
			if err != nil {
				t.Fatal(err)
			}
			if len(trend.Points) != len(ov.Errors.Trend.Points) {
				t.Fatalf("error trend has %d points, want %d", len(ov.Errors.Trend.Points), len(trend.Points))
			}
			for i, p := range trend.Points {
				if got := ov.Errors.Trend.Points[i]; got.T != p.Time.UnixMilli() || got.V != p.Value {
					t.Errorf("error trend point %d = %+v, want %s %v", i, got, p.Time, p.Value)
				}
			}

			// GraphQL, for the same window (last: range, on the same clock)
			// and filters.
			filter := map[string]any{}
			for k, v := range ov.Filters {
				filter[k] = v
			}
			var g struct {
				ConnectionHealth []struct {
					Connections                                      float64
					SuccessRate, AvgDurationMs, ReconnectsPerSession *float64
				}
				HeartbeatRtt []struct{ Avg, P95, P99 float64 }
				Errors       []struct {
					Code            string
					Count, Sessions float64
				}
				Metric struct{ Points []struct{ Value float64 } }
			}
			e.graphql(t, `query($w: Window, $f: Filter) {
				connectionHealth(window: $w, filter: $f) { connections successRate avgDurationMs reconnectsPerSession }
				heartbeatRtt(window: $w, filter: $f) { avg p95 p99 }
				errors(window: $w, filter: $f, limit: 10) { code count sessions }
				metric(name: ERROR_RATE, window: $w, filter: $f) { points { value } }
			}`, map[string]any{"w": map[string]any{"last": rng.Get("range")}, "f": filter}, &g)
			if len(g.ConnectionHealth) != 1 || g.ConnectionHealth[0].Connections != h.Overall.Connections {
				t.Fatalf("GraphQL connectionHealth %+v, page %+v", g.ConnectionHealth, h.Overall)
			}
			eqValue(t, "GraphQL success rate", h.Overall.SuccessRate, g.ConnectionHealth[0].SuccessRate)
			eqValue(t, "GraphQL avg duration", h.Overall.AvgDurationMs, g.ConnectionHealth[0].AvgDurationMs)
			eqValue(t, "GraphQL reconnects/session", h.Overall.ReconnectsPerSession, g.ConnectionHealth[0].ReconnectsPerSession)
			if len(g.HeartbeatRtt) == 1 {
				eqValue(t, "GraphQL rtt avg", ov.Latency.Overall.Avg, &g.HeartbeatRtt[0].Avg)
				eqValue(t, "GraphQL rtt p95", ov.Latency.Overall.P95, &g.HeartbeatRtt[0].P95)
				eqValue(t, "GraphQL rtt p99", ov.Latency.Overall.P99, &g.HeartbeatRtt[0].P99)
			} else if ov.Latency.Overall.Avg != nil {
				t.Errorf("GraphQL has no RTT, page %v", *ov.Latency.Overall.Avg)
			}
			if len(g.Errors) != len(ov.Errors.Top) {
				t.Errorf("GraphQL errors %+v, page %+v", g.Errors, ov.Errors.Top)
			}
			for i := range min(len(g.Errors), len(ov.Errors.Top)) {
				if g.Errors[i].Code != ov.Errors.Top[i].Code || g.Errors[i].Count != float64(ov.Errors.Top[i].Count) {
					t.Errorf("GraphQL error %d %+v, page %+v", i, g.Errors[i], ov.Errors.Top[i])
				}
			}
			if len(g.Metric.Points) == 1 {
				eqValue(t, "GraphQL error rate", ov.Errors.ErrorRate, &g.Metric.Points[0].Value)
			} else if ov.Errors.ErrorRate != nil {
				t.Errorf("GraphQL has no error rate, page %v", *ov.Errors.ErrorRate)
			}
		})
	}
}

// TestOverviewFigures pins a few figures of the fixture, so that a
// dashboard that agreed with a broken library would still fail.
func TestOverviewFigures(t *testing.T) {
	t.Parallel()
	ov := newEnv(t, nil).overview(t, "range=1h")
	// 24 connected + 12 reconnected; 6 expired tokens.
	if ov.Health.Overall.Connections != 36 || ov.Health.Overall.ConnectFailures != 6 {
		t.Errorf("connections %v, failures %v", ov.Health.Overall.Connections, ov.Health.Overall.ConnectFailures)
	}
	if ov.Health.Overall.SuccessRate == nil || *ov.Health.Overall.SuccessRate != 36.0/42 {
		t.Errorf("success rate %v, want 36/42", fmtPtr(ov.Health.Overall.SuccessRate))
	}
	// Sessions with an error: the six Android 12 ones and job-01 (a
	// producer error), of 24.
	if ov.Errors.ErrorRate == nil || *ov.Errors.ErrorRate != 7.0/24 || ov.Errors.Sessions != 24 {
		t.Errorf("error rate %v over %v sessions, want 7/24 over 24", fmtPtr(ov.Errors.ErrorRate), ov.Errors.Sessions)
	}
	if len(ov.Errors.Top) != 3 || ov.Errors.Top[0].Code != "E_GEMINI_TIMEOUT" || ov.Errors.Top[0].Count != 6 {
		t.Errorf("top errors %+v", ov.Errors.Top)
	}
	// The Android 12 segment stands out; no other OS does.
	for _, s := range ov.Segments {
		if s.Dimension != "os_version" {
			continue
		}
		for _, r := range s.Rows {
			if want := r.Value == "Android 12"; r.Problem != want {
				t.Errorf("os %s: problem = %v (%s), want %v", r.Value, r.Problem, r.Why, want)
			}
		}
	}
	want := []string{"ai_scan", "csv_import"}
	if got := ov.Options["pipeline"]; !reflect.DeepEqual(got, want) {
		t.Errorf("pipeline options %v, want %v", got, want)
	}
	// Filter options ignore the filters, so a filter does not hide its
	// siblings.
	ov = newEnv(t, nil).overview(t, "range=1h&pipeline=ai_scan")
	if got := ov.Options["pipeline"]; !reflect.DeepEqual(got, want) {
		t.Errorf("filtered: pipeline options %v, want %v", got, want)
	}
	if ov.Health.Overall.Connections != 18 {
		t.Errorf("ai_scan connections %v, want 18", ov.Health.Overall.Connections)
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for _, q := range []string{"range=2h", "range=1h&jobId=x", "range=1h&conn_id=c"} {
		for _, path := range []string{"/dashboard/api/overview?", "/dashboard/api/stream?"} {
			rec := e.do(t, http.MethodGet, path+q, nil, "Authorization", "Bearer "+adminToken)
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "E_BAD_REQUEST") {
				t.Errorf("%s%s: %d %s", path, q, rec.Code, rec.Body)
			}
		}
	}
}

// login posts the admin token and returns the session cookie.
func (e *env) login(t *testing.T, token string, hdr ...string) (*httptest.ResponseRecorder, *http.Cookie) {
	t.Helper()
	form := url.Values{"token": {token}, "next": {"/dashboard?range=24h&pipeline=ai_scan"}}
	rec := e.do(t, http.MethodPost, "/dashboard/login", strings.NewReader(form.Encode()),
		append([]string{"Content-Type", "application/x-www-form-urlencoded"}, hdr...)...)
	for _, c := range rec.Result().Cookies() {
		if c.Name == dashboard.CookieName {
			return rec, c
		}
	}
	return rec, nil
}

func TestAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	data := []string{"/dashboard/api/overview", "/dashboard/api/stream", "/dashboard/api/jobs/job-03"}

	// Without a login: the page sends the browser to the login form and
	// keeps the query; the data endpoints answer 401 and nothing else.
	rec := e.do(t, http.MethodGet, "/dashboard?range=24h", nil)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/dashboard/login?next=%2Fdashboard%3Frange%3D24h" {
		t.Errorf("page without login: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	rec = e.do(t, http.MethodGet, "/dashboard/login?next=%2Fdashboard%3Frange%3D24h", nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `value="/dashboard?range=24h"`) {
		t.Errorf("login page: %d %s", rec.Code, rec.Body)
	}
	for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "Bearer "}, {"Cookie", dashboard.CookieName + "=" + adminToken}} {
		for _, p := range data {
			rec := e.do(t, http.MethodGet, p, nil, hdr...)
			if rec.Code != http.StatusUnauthorized || strings.Contains(rec.Body.String(), "connections") {
				t.Errorf("%s with %q: %d %s", p, hdr, rec.Code, rec.Body)
			}
		}
	}

	// A wrong token: 401, the form again, no cookie.
	rec, c := e.login(t, "not-the-token")
	if rec.Code != http.StatusUnauthorized || c != nil || !strings.Contains(rec.Body.String(), "not the admin token") {
		t.Errorf("wrong token: %d cookie %v", rec.Code, c)
	}

	// The right token: a session cookie that is not the token, and back to
	// where the browser was going.
	rec, c = e.login(t, adminToken)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/dashboard?range=24h&pipeline=ai_scan" {
		t.Fatalf("login: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.Path != "/dashboard" ||
		strings.Contains(c.Value, adminToken) || c.MaxAge != int((12*time.Hour).Seconds()) {
		t.Fatalf("session cookie %+v", c)
	}
	cookie := func(v string) []string { return []string{"Cookie", dashboard.CookieName + "=" + v} }
	// (The stream never ends by itself: TestStreamEndsWithSession reads it
	// with a session.)
	for _, p := range []string{data[0], data[2], "/dashboard?range=1h"} {
		if rec := e.do(t, http.MethodGet, p, nil, cookie(c.Value)...); rec.Code != http.StatusOK {
			t.Errorf("%s with the session: %d %s", p, rec.Code, rec.Body)
		}
	}

	// Tampering: every change to the cookie is refused.
	parts := strings.Split(c.Value, ".")
	if len(parts) != 7 {
		t.Fatalf("session %q: want v2.expiry.id.name.role.created.mac", c.Value)
	}
	flip := func(s string) string {
		b := []byte(s)
		if b[0] == 'a' {
			b[0] = 'b'
		} else {
			b[0] = 'a'
		}
		return string(b)
	}
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, ".")
	}
	for name, v := range map[string]string{
		"id changed":     with(2, flip(parts[2])),
		"expiry changed": with(1, "9999999999"),
		"name changed":   with(3, "dmVyYQ"),
		"role changed":   with(4, "viewer"),
		"mac changed":    with(6, flip(parts[6])),
		"version":        with(0, "v1"),
		"no mac":         strings.Join(parts[:6], "."),
		"empty":          "",
		"garbage":        "......",
	} {
		if rec := e.do(t, http.MethodGet, data[0], nil, cookie(v)...); rec.Code != http.StatusUnauthorized {
			t.Errorf("%s: %d", name, rec.Code)
		}
	}
	// A session signed for another admin token is refused.
	other := newEnv(t, func(o *dashboard.Options) { o.AdminToken = "another-token-0123456789" })
	_, oc := other.login(t, "another-token-0123456789")
	if rec := e.do(t, http.MethodGet, data[0], nil, cookie(oc.Value)...); rec.Code != http.StatusUnauthorized {
		t.Errorf("session of another token: %d", rec.Code)
	}

	// Logout ends the session, also for a copy of the cookie.
	rec = e.do(t, http.MethodPost, "/dashboard/logout", nil, append(cookie(c.Value),
		"Origin", "http://example.com", dashboard.CSRFHeader, csrfOf(t, e, c))...)
	if rec.Code != http.StatusSeeOther || len(rec.Result().Cookies()) != 1 || rec.Result().Cookies()[0].MaxAge >= 0 {
		t.Errorf("logout: %d %v", rec.Code, rec.Result().Cookies())
	}
	if rec := e.do(t, http.MethodGet, data[0], nil, cookie(c.Value)...); rec.Code != http.StatusUnauthorized {
		t.Errorf("after logout: %d", rec.Code)
	}

	// Expiry.
	_, c = e.login(t, adminToken)
	e.clock.Advance(12*time.Hour - time.Second)
	if rec := e.do(t, http.MethodGet, data[0], nil, cookie(c.Value)...); rec.Code != http.StatusOK {
		t.Errorf("just before expiry: %d", rec.Code)
	}
	e.clock.Advance(time.Second)
	if rec := e.do(t, http.MethodGet, data[0], nil, cookie(c.Value)...); rec.Code != http.StatusUnauthorized {
		t.Errorf("at expiry: %d", rec.Code)
	}
}

func TestLoginRedirectStaysInside(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for next, want := range map[string]string{
		"/dashboard?range=7d":      "/dashboard?range=7d",
		"/dashboard":               "/dashboard",
		"//evil.example/dashboard": "/dashboard",
		"https://evil.example/":    "/dashboard",
		"/dashboardx":              "/dashboard",
		"/v1/jobs":                 "/dashboard",
		"/dashboard?x=\\evil":      "/dashboard",
	} {
		form := url.Values{"token": {adminToken}, "next": {next}}
		rec := e.do(t, http.MethodPost, "/dashboard/login", strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
		if got := rec.Header().Get("Location"); got != want {
			t.Errorf("next %q: Location %q, want %q", next, got, want)
		}
	}
}

func TestSecureCookie(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		mod    func(*dashboard.Options)
		tls    bool
		secure bool
	}{
		{"plain http", nil, false, false},
		{"tls", nil, true, true},
		{"https public URL", func(o *dashboard.Options) { o.PublicURL = "https://jobs.example.com" }, false, true},
		{"trusted proxy says https", func(o *dashboard.Options) {
			o.Scheme = func(r *http.Request) string { return r.Header.Get("X-Forwarded-Proto") }
		}, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, c.mod)
			form := url.Values{"token": {adminToken}}
			req := httptest.NewRequest(http.MethodPost, "/dashboard/login", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Forwarded-Proto", "https")
			if c.tls {
				req.TLS = &tls.ConnectionState{}
			}
			rec := httptest.NewRecorder()
			e.dash.ServeHTTP(rec, req)
			cs := rec.Result().Cookies()
			if len(cs) != 1 || cs[0].Secure != c.secure {
				t.Errorf("cookies %+v, want Secure=%v", cs, c.secure)
			}
		})
	}
}

func TestPageHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	rec := e.do(t, http.MethodGet, "/dashboard", nil, "Authorization", "Bearer "+adminToken)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `id="panel-alerts"`) || !strings.Contains(rec.Body.String(), `id="panel-experiments"`) {
		t.Fatalf("page: %d", rec.Code)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	for _, a := range []string{"app.js", "chart.js", "style.css"} {
		rec := e.do(t, http.MethodGet, "/dashboard/assets/"+a, nil)
		if rec.Code != http.StatusOK || rec.Body.Len() < 100 {
			t.Errorf("%s: %d", a, rec.Code)
		}
	}
	if rec := e.do(t, http.MethodGet, "/dashboard/nope", nil); rec.Code != http.StatusNotFound {
		t.Errorf("unknown path: %d", rec.Code)
	}
}

// TestStream reads the event stream: an overview at once, another after
// the interval, and the end of the stream at Close.
func TestStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *dashboard.Options) {
		o.Clock = jobcast.SystemClock{}
		// The alerts panel rides on every overview of the stream.
		o.Alerts = fakeAlerts{snap: alerting.Snapshot{Firing: []alerting.AlertStatus{{AlertInstance: jobcast.AlertInstance{Rule: "r", State: jobcast.AlertFiring}}}}}
	})
	srv := httptest.NewServer(e.dash)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/dashboard/api/stream?range=24h&networkType=wifi", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	var events, lives int
	var event string
	for (events < 2 || lives < 2) && sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "live":
			var lu dashboard.LiveUpdate
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &lu); err != nil {
				t.Fatal(err)
			}
			if lu.LiveConnections != 1 || len(lu.LiveJobs) != 1 || lu.NextOverviewMs < 0 || lu.NextOverviewMs > 1000 {
				t.Errorf("live event %+v", lu)
			}
			lives++
		case strings.HasPrefix(line, "data: "):
			if event != "overview" {
				t.Fatalf("event %q: %s", event, line)
			}
			var ov dashboard.Overview
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ov); err != nil {
				t.Fatal(err)
			}
			if ov.Range != "24h" || ov.Filters["networkType"] != "wifi" || ov.StreamIntervalMs != 20 {
				t.Errorf("overview %s %v %d", ov.Range, ov.Filters, ov.StreamIntervalMs)
			}
			if ov.Alerts == nil || !ov.Alerts.Configured || len(ov.Alerts.Firing) != 1 || ov.Experiments == nil || ov.Experiments.Configured {
				t.Errorf("overview panels: alerts %+v, experiments %+v", ov.Alerts, ov.Experiments)
			}
			events++
		}
	}
	if events < 2 || lives < 2 {
		t.Fatalf("%d overviews and %d live events before the stream ended: %v", events, lives, sc.Err())
	}
	// Close ends the stream (http.Server.Shutdown would wait for it).
	e.dash.Close()
	for sc.Scan() {
	}
}

func TestStreamEndsWithSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	_, c := e.login(t, adminToken)
	srv := httptest.NewServer(e.dash)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/dashboard/api/stream", nil)
	req.AddCookie(c)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	e.clock.Advance(13 * time.Hour) // the session expires
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), "event: auth\n") {
		t.Errorf("stream did not end with an auth event:\n%.300s", body)
	}
}

func TestJobInspector(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	get := func(id string) (*httptest.ResponseRecorder, dashboard.JobView) {
		rec := e.do(t, http.MethodGet, "/dashboard/api/jobs/"+id, nil, "Authorization", "Bearer "+adminToken)
		var v dashboard.JobView
		_ = json.Unmarshal(rec.Body.Bytes(), &v)
		return rec, v
	}
	rec, v := get("job-03")
	if rec.Code != http.StatusOK || v.State == nil || v.State.Status != protocol.StatusFailed || len(v.Connections) != 1 {
		t.Fatalf("job-03: %d %+v", rec.Code, v)
	}
	var names []string
	for i, ev := range v.Timeline {
		names = append(names, ev.Event)
		if i > 0 && ev.TS.Before(v.Timeline[i-1].TS) {
			t.Errorf("timeline out of order at %d", i)
		}
	}
	want := "job_started connected heartbeat heartbeat heartbeat disconnected connect_failed reconnected error job_failed"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("timeline %s\nwant     %s", got, want)
	}
	if ev := v.Timeline[6]; ev.Reason != jobcast.ReasonTokenExpired || ev.ErrorCode != "E_TOKEN_EXPIRED" || !ev.Retryable {
		t.Errorf("connect_failed row %+v", ev)
	}
	// Not in the job store, but in telemetry: the timeline, no state.
	rec, v = get("job-04")
	if rec.Code != http.StatusOK || v.State != nil || len(v.Timeline) == 0 {
		t.Errorf("job-04: %d %+v", rec.Code, v)
	}
	if rec, _ := get("no-such-job"); rec.Code != http.StatusNotFound {
		t.Errorf("unknown job: %d", rec.Code)
	}
	if rec, _ := get(strings.Repeat("x", 300)); rec.Code != http.StatusBadRequest {
		t.Errorf("long id: %d", rec.Code)
	}
}

// countingStore counts the statements run on a telemetry store.
type countingStore struct {
	jobcast.TelemetryStore
	mu sync.Mutex
	n  int
}

func (c *countingStore) Query(ctx context.Context, q string, args ...any) (*jobcast.Rows, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.TelemetryStore.Query(ctx, q, args...)
}

func (c *countingStore) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestOverviewSharedByPages: pages asking for the same overview at once,
// or within a second, cost one computation.
func TestOverviewSharedByPages(t *testing.T) {
	t.Parallel()
	store := &countingStore{TelemetryStore: openStore(t, fixture(end))}
	e := newEnv(t, func(o *dashboard.Options) { o.Metrics = metrics.New(store) })
	e.overview(t, "range=24h&pipeline=csv_import") // the same statements as below
	one := store.count()
	if one < 20 {
		t.Fatalf("one overview ran %d statements", one)
	}
	// Without filters, the filter choices are the segments' connections:
	// equal queries run once.
	e.overview(t, "range=7d")
	if n := store.count() - one; n >= one {
		t.Errorf("an unfiltered overview ran %d statements, a filtered one %d", n, one)
	}
	one0 := store.count()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { e.overview(t, "range=1h&pipeline=ai_scan") })
	}
	wg.Wait()
	if got := store.count() - one0; got != one {
		t.Errorf("8 concurrent pages ran %d statements, want %d (one overview)", got, one)
	}
	e.clock.Advance(999 * time.Millisecond)
	e.overview(t, "range=1h&pipeline=ai_scan")
	if got := store.count() - one0; got != one {
		t.Errorf("within a second: %d statements, want %d", got, one)
	}
	e.clock.Advance(time.Millisecond)
	e.overview(t, "range=1h&pipeline=ai_scan")
	if got := store.count() - one0 - one; got != one {
		t.Errorf("a second later: %d more statements, want %d", got, one)
	}
}
