package dashboard_test

// Browser tests: the real page in headless Chromium (Debian's chromium
// package at /usr/bin/chromium, or JOBCAST_CHROMIUM), against a complete
// server: producer API, hub, telemetry recorder into DuckDB, GraphQL and
// the dashboard. They fail, never skip, without a browser: CI installs it.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/gorilla/websocket"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/dashboard"
	"github.com/jobcast/jobcast/gql"
	"github.com/jobcast/jobcast/httpapi"
	"github.com/jobcast/jobcast/hub"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/metrics"
	"github.com/jobcast/jobcast/telemetry"
)

const apiKey = "dash-api-key-0123456789"

// liveWithin is how soon new traffic must show on the page (SPEC §5).
const liveWithin = 5 * time.Second

// stack is a complete jobcast server for the browser.
type stack struct {
	URL   string
	srv   *httptest.Server
	dash  *dashboard.Handler
	store *gateStore
}

// gateStore is a telemetry store whose queries can be held, as a stuck
// store would hold them.
type gateStore struct {
	jobcast.TelemetryStore
	mu   sync.Mutex
	gate chan struct{} // nil: queries pass
}

func (g *gateStore) Query(ctx context.Context, q string, args ...any) (*jobcast.Rows, error) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.TelemetryStore.Query(ctx, q, args...)
}

// hold makes queries wait until release.
func (g *gateStore) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gate == nil {
		g.gate = make(chan struct{})
	}
}

func (g *gateStore) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gate != nil {
		close(g.gate)
		g.gate = nil
	}
}

// startStack starts a server whose telemetry holds the fixture's hour
// ending now.
func startStack(t *testing.T) *stack { return startStackWith(t, false) }

// startStackWith starts the stack; with panels, the alerts and experiments
// panels read real services over the same telemetry (panelServices: rules
// evaluated once, firing, pending and silenced, and an experiment with
// exposures), with the notification already in the history.
func startStackWith(t *testing.T, panels bool) *stack {
	t.Helper()
	store := &gateStore{TelemetryStore: openStore(t, fixture(time.Now()))}
	t.Cleanup(store.release)
	log := slog.New(slog.DiscardHandler)
	clock := jobcast.SystemClock{}
	rec := telemetry.New(store, telemetry.Options{Node: "test", FlushInterval: 100 * time.Millisecond, Clock: clock, Log: log})
	rec.Start()
	cfg := jobcast.Config{APIKeys: []string{apiKey}, AdminToken: adminToken, NodeID: "test"}.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	secret := []byte("dash-jwt-secret-0123456789-0123456789")
	ring, err := auth.NewKeyring(auth.Key{ID: auth.SecretKeyID(secret), Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	tokens := auth.NewTokens(ring, cfg.TokenTTL, clock)
	keys, err := auth.NewAPIKeys(cfg.APIKeys, nil)
	if err != nil {
		t.Fatal(err)
	}
	jobStore, broker := inmem.NewJobStore(), inmem.NewBroker()
	catalog := jobcast.NewCatalog(cfg.Errors)
	svc := jobs.New(jobStore, broker, catalog, clock, log)
	h := hub.New(hub.Options{Config: cfg, Store: jobStore, Broker: broker, Tokens: tokens, Catalog: catalog,
		Clock: clock, Log: log, NodeID: cfg.NodeID, Recorder: rec})
	svc.SetTelemetry(rec, h.ThrottledCount)
	lib := metrics.New(store)
	g, err := gql.NewHandler(lib, h, gql.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	dopt := dashboard.Options{Metrics: lib, Events: store, Jobs: svc, Live: h, AdminToken: adminToken,
		StreamInterval: time.Second, Clock: clock, Log: log}
	if panels {
		asvc, esvc := panelServices(t, store.TelemetryStore, clock)
		waitHistory(t, asvc, 1)
		dopt.Alerts, dopt.Experiments = asvc, esvc
	}
	dash, err := dashboard.New(dopt)
	if err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(httpapi.Options{Config: cfg, Jobs: svc, Hub: h, Tokens: tokens, APIKeys: keys, Clock: clock, Log: log,
		MetricsLib: lib, GraphQL: g, Dashboard: dash})
	srv := httptest.NewServer(api)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		dash.Close()
		_ = h.Shutdown(ctx)
		srv.CloseClientConnections()
		srv.Close()
		if err := rec.Stop(ctx); err != nil {
			t.Error(err)
		}
		_ = jobStore.Close()
	})
	return &stack{URL: srv.URL, srv: srv, dash: dash, store: store}
}

// graphql asks the stack's GraphQL endpoint with the admin token.
func (s *stack) graphql(t *testing.T, query string, vars map[string]any, out any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r struct {
		Data   json.RawMessage
		Errors []struct{ Message string }
	}
	if err := json.Unmarshal(raw, &r); err != nil || len(r.Errors) > 0 || resp.StatusCode != http.StatusOK {
		t.Fatalf("graphql: %d %v %s", resp.StatusCode, err, raw)
	}
	if err := json.Unmarshal(r.Data, out); err != nil {
		t.Fatal(err)
	}
}

// The browser: one per package, a fresh incognito context per test.
var (
	browserOnce   sync.Once
	browserCtx    context.Context
	browserCancel context.CancelFunc = func() {}
	browserErr    error
	browserAbsent bool // no Chromium installed: skip, unless required
)

func chromiumPath() string {
	if p := os.Getenv("JOBCAST_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

func stopBrowser() { browserCancel() }

// tab returns a new incognito tab of the shared browser, closed at the end
// of the test, and the console messages it collects. Without Chromium
// installed the test skips and says why, unless JOBCAST_REQUIRE_INTEGRATION
// is set (.ci/run sets it and installs Chromium), in which case it fails.
func tab(t *testing.T) (context.Context, *console) {
	t.Helper()
	browserOnce.Do(func() {
		path := chromiumPath()
		if _, err := os.Stat(path); err != nil {
			browserErr = fmt.Errorf("no Chromium at %s: install Debian's chromium (.ci/run does) or set JOBCAST_CHROMIUM: %w", path, err)
			browserAbsent = true
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path),
			chromedp.WindowSize(1440, 900), chromedp.Flag("hide-scrollbars", true))
		actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
		bctx, bcancel := chromedp.NewContext(actx)
		browserCancel = func() { bcancel(); acancel() }
		if err := chromedp.Do(bctx); err != nil { // starts the browser
			browserErr = fmt.Errorf("start Chromium at %s: %w", path, err)
			return
		}
		browserCtx = bctx
	})
	if browserAbsent && os.Getenv("JOBCAST_REQUIRE_INTEGRATION") == "" {
		t.Skipf("%v (set JOBCAST_REQUIRE_INTEGRATION=1 to make this a failure)", browserErr)
	}
	if browserErr != nil {
		t.Fatal(browserErr)
	}
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1440, 900)); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	c := &console{}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			c.add(m)
		}
	}()
	return ctx, c
}

// console collects a tab's console errors and exceptions.
type console struct {
	mu   sync.Mutex
	errs []string
}

func (c *console) add(m chromedp.ConsoleMessage) {
	if m.Type != chromedp.ConsoleError && !m.IsException() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, m.String())
}

func (c *console) errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errs...)
}

// run runs steps within a time limit.
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// login opens the dashboard with query, logs in through the form and
// waits for the first live figures.
func login(t *testing.T, ctx context.Context, s *stack, query string) {
	t.Helper()
	run(t, ctx, "log in",
		chromedp.Navigate(s.URL+"/dashboard?"+query),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), adminToken),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.CSS(".status.live")),
	)
	// The form post passed the CSRF origin check, and the header names
	// who signed in.
	if who := eval[string](t, ctx, `document.getElementById('whoami').innerText`); who != "Signed in as admin (admin)" {
		t.Errorf("header says %q", who)
	}
}

// shown is the figures the page shows and the window they are for, read at
// once (the page re-renders every second).
type shown struct {
	From, To, Filters string
	Values            map[string]string
}

func readShown(t *testing.T, ctx context.Context) shown {
	return eval[shown](t, ctx, `(() => {
		const w = document.getElementById('window').dataset;
		const values = {};
		for (const e of document.querySelectorAll('.kpi-value')) values[e.id] = e.dataset.value;
		return {From: w.from, To: w.to, Filters: w.filters, Values: values};
	})()`)
}

func num(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("page value %q is not a number", s)
	}
	return f
}

// health asks GraphQL for the connection health of a window.
func (s *stack) health(t *testing.T, from, to string, filter map[string]any) (connections float64, success *float64) {
	t.Helper()
	var g struct {
		ConnectionHealth []struct {
			Connections float64
			SuccessRate *float64
		}
	}
	s.graphql(t, `query($w: Window, $f: Filter) { connectionHealth(window: $w, filter: $f) { connections successRate } }`,
		map[string]any{"w": map[string]any{"from": from, "to": to}, "f": filter}, &g)
	if len(g.ConnectionHealth) != 1 {
		t.Fatalf("connectionHealth: %+v", g)
	}
	return g.ConnectionHealth[0].Connections, g.ConnectionHealth[0].SuccessRate
}

// TestBrowserDashboard logs in and checks that every panel renders without
// console errors, that the figures equal GraphQL's for the same window,
// the accessibility basics, and takes a 1440×900 screenshot.
func TestBrowserDashboard(t *testing.T) {
	t.Parallel()
	s := startStackWith(t, true)
	ctx, cons := tab(t)
	login(t, ctx, s, "range=1h")

	// Every panel is there and shows something.
	type panel struct {
		ID      string
		Visible bool
		Text    int
	}
	panels := eval[[]panel](t, ctx, `[...document.querySelectorAll('main > section.panel')].map(p => ({
		ID: p.id, Visible: p.getBoundingClientRect().height > 50, Text: p.innerText.trim().length}))`)
	want := []string{"panel-health", "panel-errors", "panel-latency", "panel-segments", "panel-throughput",
		"panel-inspector", "panel-alerts", "panel-experiments"}
	var got []string
	for _, p := range panels {
		got = append(got, p.ID)
		if !p.Visible || p.Text < 20 {
			t.Errorf("panel %s: visible %v, %d characters", p.ID, p.Visible, p.Text)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("panels %v, want %v", got, want)
	}
	v := readShown(t, ctx).Values
	for _, id := range []string{"kpi-connections", "kpi-success-rate", "kpi-avg-duration", "kpi-reconnects", "kpi-error-rate",
		"kpi-rtt-avg", "kpi-rtt-p95", "kpi-rtt-p99", "kpi-message-rate", "kpi-bytes-per-message", "kpi-throttle-rate", "kpi-live-connections"} {
		if v[id] == "" {
			t.Errorf("%s shows no figure", id)
		}
	}
	rows := eval[map[string]int](t, ctx, `Object.fromEntries(['table-health-network', 'table-errors', 'table-latency',
		'table-segment-os_version', 'table-segment-app_version', 'table-segment-device_model', 'table-segment-network_type',
		'table-pipelines'].map(id => [id, document.querySelectorAll('#' + id + ' tbody tr:not(:has(td.empty))').length]))`)
	for id, n := range rows {
		if n == 0 {
			t.Errorf("table %s has no rows", id)
		}
	}
	charts := eval[map[string]int](t, ctx, `Object.fromEntries([...document.querySelectorAll('.chart')].map(c => [c.id,
		c.querySelectorAll('svg path').length + c.querySelectorAll('svg circle[r="2.5"]').length]))`)
	if len(charts) != 5 {
		t.Errorf("charts %v, want 5", charts)
	}
	for id, n := range charts {
		if n == 0 {
			t.Errorf("chart %s draws no line", id)
		}
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#table-segment-os_version tr.problem').length`); n != 1 {
		t.Errorf("%d problem OS segments highlighted, want 1 (Android 12)", n)
	}

	// The alerts panel: the evaluator's firing, pending and silenced
	// alerts, each with value and threshold, and the notification sent.
	type alertsShown struct {
		Rows    map[string][]string
		Link    string
		Summary string
	}
	as := eval[alertsShown](t, ctx, `(() => {
		const rows = {};
		for (const k of ['firing', 'pending', 'silenced', 'resolved', 'history'])
			rows[k] = [...document.querySelectorAll('#table-alerts-' + k + ' tbody tr:not(:has(td.empty))')].map(r => r.innerText.replace(/\s+/g, ' '));
		const a = document.querySelector('#table-alerts-firing a');
		return {Rows: rows, Link: a ? a.getAttribute('href') : '', Summary: document.getElementById('alerts-summary').innerText};
	})()`)
	if f := as.Rows["firing"]; len(f) != 1 || !strings.Contains(f[0], "critical") || !strings.Contains(f[0], ruleErrors) ||
		!strings.Contains(f[0], "pipeline=ai_scan") || !strings.Contains(f[0], "50.0%") || !strings.Contains(f[0], "> 5.0% over 1h") {
		t.Errorf("firing rows %q", f)
	}
	if pill := eval[string](t, ctx, `document.getElementById('alerts-pill').innerText`); pill != "Alerts: 1 firing" {
		t.Errorf("header alerts pill %q", pill)
	}
	if as.Link != "/dashboard?pipeline=ai_scan&range=1h" {
		t.Errorf("firing alert links to %q", as.Link)
	}
	if p := as.Rows["pending"]; len(p) != 1 || !strings.Contains(p[0], rulePending) || !strings.Contains(p[0], "> 50 ms over 1h") {
		t.Errorf("pending rows %q", p)
	}
	if p := as.Rows["silenced"]; len(p) != 1 || !strings.Contains(p[0], "pipeline=csv_import") {
		t.Errorf("silenced rows %q", p)
	}
	if h := as.Rows["history"]; len(h) != 1 || !strings.Contains(h[0], "hook (webhook)") || !strings.Contains(h[0], "firing") ||
		!strings.Contains(h[0], "sent") || !strings.Contains(h[0], `errors_by_pipeline{pipeline="ai_scan"}`) {
		t.Errorf("history rows %q", h)
	}
	if len(as.Rows["resolved"]) != 0 || !strings.HasPrefix(as.Summary, "1 firing · 1 pending · 1 silenced · 2 rules") {
		t.Errorf("resolved %q, summary %q", as.Rows["resolved"], as.Summary)
	}

	// The experiments panel: the experiment, its arms with their units,
	// the verdict withheld for want of units, seven metrics with lift and
	// Holm-adjusted p.
	type expShown struct {
		Verdict string
		Arms    []string
		Metrics []string
		Head    []string
	}
	es := eval[expShown](t, ctx, `(() => {
		const d = document.querySelector('[data-experiment="`+fixtureExpID+`"]');
		if (!d) return {Verdict: '', Arms: [], Metrics: [], Head: []};
		const rows = (sel) => [...d.querySelectorAll(sel + ' tbody tr')].map(r => r.innerText.replace(/\s+/g, ' '));
		return {Verdict: d.querySelector('.verdict').innerText, Arms: rows('table[id^="table-arms-"]'),
			Metrics: rows('table[id^="table-metrics-"]'),
			Head: [...d.querySelectorAll('table[id^="table-metrics-"] th')].map(h => h.innerText)};
	})()`)
	if es.Verdict != "not enough units: 12/1000" {
		t.Errorf("experiment verdict %q", es.Verdict)
	}
	if len(es.Arms) != 2 || !strings.Contains(es.Arms[0], "control (control) 3,000 12") || !strings.Contains(es.Arms[1], "variant 4,500 12") {
		t.Errorf("experiment arms %q", es.Arms)
	}
	if len(es.Metrics) != 7 || !strings.Contains(es.Metrics[0], "reconnects_per_session") || !strings.Contains(es.Metrics[1], "avg_connection_duration_ms 2.0 min 2.0 min +") {
		t.Errorf("experiment metrics %q", es.Metrics)
	}
	if strings.Join(es.Head, "|") != "Metric|control|variant|Lift, 95% CI|p (Holm)" {
		t.Errorf("experiment metric columns %q", es.Head)
	}

	// A chart shows values under the pointer.
	run(t, ctx, "hover a chart", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[chromedp.Void](`(() => {
			const r = document.querySelector('#chart-rtt svg rect').getBoundingClientRect();
			document.querySelector('#chart-rtt svg rect').dispatchEvent(new MouseEvent('mousemove',
				{clientX: r.left + r.width * 0.3, clientY: r.top + 10, bubbles: true}));
		})()`)(ctx, tg)
		return err
	}))
	if tip := eval[string](t, ctx, `document.getElementById('tooltip').hidden ? '' : document.getElementById('tooltip').innerText`); !strings.Contains(tip, "p95:") || !strings.Contains(tip, "ms") {
		t.Errorf("tooltip %q, want values with units", tip)
	}

	// The figures equal GraphQL's for the same window.
	sh := readShown(t, ctx)
	conns, success := s.health(t, sh.From, sh.To, nil)
	if got := num(t, sh.Values["kpi-connections"]); got != conns {
		t.Errorf("page connections %v, GraphQL %v", got, conns)
	}
	if success == nil || num(t, sh.Values["kpi-success-rate"]) != *success {
		t.Errorf("page success rate %s, GraphQL %v", sh.Values["kpi-success-rate"], fmtPtr(success))
	}

	// Accessibility: labels, contrast of the main text colours, visible
	// keyboard focus.
	type a11y struct {
		Problems []string
		Ratios   map[string]float64
	}
	res := eval[a11y](t, ctx, a11yScript)
	for _, p := range res.Problems {
		t.Errorf("accessibility: %s", p)
	}
	t.Logf("contrast ratios: %v", res.Ratios)
	type focus struct {
		ID, Tag, Style string
		Visible        bool
		Width          float64
	}
	run(t, ctx, "tab to the first control", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`)(ctx, tg); err != nil {
			return err
		}
		_, err := chromedp.KeyEvent(kb.Tab)(ctx, tg)
		return err
	}))
	f := eval[focus](t, ctx, `(() => { const e = document.activeElement, cs = getComputedStyle(e);
		return {ID: e.id, Tag: e.tagName, Style: cs.outlineStyle, Visible: e.matches(':focus-visible'), Width: parseFloat(cs.outlineWidth)}; })()`)
	if f.Tag == "BODY" || !f.Visible || f.Style == "none" || f.Width < 2 {
		t.Errorf("keyboard focus not visible: %+v", f)
	}

	// The job inspector: a job's state, connections and timeline.
	run(t, ctx, "inspect a job",
		chromedp.SendKeys(chromedp.ID("job-id"), "job-03"),
		chromedp.Click(chromedp.ID("inspect")),
		chromedp.WaitVisible(chromedp.ID("job-timeline")),
	)
	// (Ten of the fixture and the panels' experiment exposure.)
	if n := eval[int](t, ctx, `document.querySelectorAll('#job-timeline tbody tr').length`); n != 11 {
		t.Errorf("timeline of job-03 has %d rows, want 11", n)
	}

	// A screenshot at 1440×900.
	run(t, ctx, "scroll to the top", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)(ctx, tg)
		return err
	}))
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 1440 || b.Dy() != 900 {
		t.Errorf("screenshot is %dx%d, want 1440x900", b.Dx(), b.Dy())
	}
	path := filepath.Join(t.TempDir(), "dashboard.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)

	// An alert's link opens the dashboard filtered to it.
	run(t, ctx, "open the firing alert's link",
		chromedp.Navigate(s.URL+as.Link),
		chromedp.Poll[chromedp.Void](`location.search.includes('pipeline=ai_scan') && document.getElementById('filter-pipeline').value === 'ai_scan' &&
			document.getElementById('window').dataset.filters === 'pipeline=ai_scan'`, chromedp.WithPollingTimeout(10*time.Second)),
	)

	if errs := cons.errors(); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}

// a11yScript checks that every control has a label and that the main text
// colours have a WCAG contrast of at least 4.5 against their background.
const a11yScript = `(() => {
	const problems = [];
	for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
		if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label')) problems.push('no label for ' + (el.id || el.name));
	}
	for (const b of document.querySelectorAll('button')) {
		if (!b.textContent.trim() && !b.getAttribute('aria-label')) problems.push('a button without a name');
	}
	const parse = (c) => {
		const p = c.match(/[\d.]+/g).map(Number);
		return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
	};
	const lum = (c) => {
		const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
		return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
	};
	const background = (el) => {
		const layers = [];
		for (let e = el; e; e = e.parentElement) {
			const c = parse(getComputedStyle(e).backgroundColor);
			if (c.a > 0) { layers.push(c); if (c.a >= 1) break; }
		}
		let bg = {r: 255, g: 255, b: 255};
		for (const l of layers.reverse()) bg = {r: l.r * l.a + bg.r * (1 - l.a), g: l.g * l.a + bg.g * (1 - l.a), b: l.b * l.a + bg.b * (1 - l.a)};
		return bg;
	};
	const ratios = {};
	for (const sel of ['body', 'h1', 'h2', 'h3', 'label', '.muted', '.kpi-label', '.kpi-value', '.kpi-note', 'th', 'td',
			'button', 'button[aria-pressed="true"]', 'select', '#status-text', '.legend', 'tr.problem td', '.problem-badge',
			'.retry-yes', '.retry-no', '.chart .axis text', '.sev-critical', 'tr.firing td', '.sev-warning', '.outcome-sent',
			'.verdict', '.labels', '#alerts-pill']) {
		const el = document.querySelector(sel);
		if (!el) { problems.push('nothing matches ' + sel); continue; }
		const cs = getComputedStyle(el);
		const fg = parse(el instanceof SVGElement ? cs.fill : cs.color);
		const a = lum(fg), b = lum(background(el));
		const r = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
		ratios[sel] = Math.round(r * 100) / 100;
		if (r < 4.5) problems.push(sel + ' has contrast ' + r.toFixed(2) + ', want at least 4.5');
	}
	return {Problems: problems, Ratios: ratios};
})()`

// TestBrowserFilter picks a network type: the numbers change to GraphQL's
// filtered answer, the URL keeps the filter, and a reload restores it.
func TestBrowserFilter(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	ctx, cons := tab(t)
	login(t, ctx, s, "range=1h")
	// Without alerting or experiments the panels say so.
	if txt := eval[string](t, ctx, `document.getElementById('alerts-content').innerText + ' / ' + document.getElementById('experiments-content').innerText`); txt != "Alerts are not configured on this node. / Experiments are not configured on this node." {
		t.Errorf("panels without services: %q", txt)
	}
	before := readShown(t, ctx)
	run(t, ctx, "filter by wifi",
		chromedp.Poll[chromedp.Void](`document.querySelector('#filter-networkType option[value="wifi"]') !== null`,
			chromedp.WithPollingTimeout(5*time.Second)),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById('filter-networkType');
				s.value = 'wifi'; s.dispatchEvent(new Event('change', {bubbles: true})); })()`)(ctx, tg)
			return err
		}),
		chromedp.Poll[chromedp.Void](`document.getElementById('window').dataset.filters === 'networkType=wifi' &&
			location.search.includes('networkType=wifi') && document.querySelector('.status.live') !== null`,
			chromedp.WithPollingTimeout(5*time.Second)),
	)
	after := readShown(t, ctx)
	conns, success := s.health(t, after.From, after.To, map[string]any{"networkType": "wifi"})
	if got := num(t, after.Values["kpi-connections"]); got != conns || got == num(t, before.Values["kpi-connections"]) {
		t.Errorf("filtered connections %v, GraphQL %v, unfiltered %s", got, conns, before.Values["kpi-connections"])
	}
	if success == nil || num(t, after.Values["kpi-success-rate"]) != *success {
		t.Errorf("filtered success rate %s, GraphQL %v", after.Values["kpi-success-rate"], fmtPtr(success))
	}
	loc := eval[string](t, ctx, `location.pathname + location.search`)
	if loc != "/dashboard?range=1h&networkType=wifi" {
		t.Errorf("URL %s", loc)
	}
	// The filter lives in the URL: a reload shows the same.
	run(t, ctx, "reload", chromedp.Navigate(s.URL+loc), chromedp.WaitVisible(chromedp.CSS(".status.live")))
	if sel := eval[string](t, ctx, `document.getElementById('filter-networkType').value`); sel != "wifi" {
		t.Errorf("after reload the network filter is %q", sel)
	}
	if f := readShown(t, ctx).Filters; f != "networkType=wifi" {
		t.Errorf("after reload the figures are filtered by %q", f)
	}
	if errs := cons.errors(); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestBrowserLive opens a real client connection: the page shows it within
// five seconds without a reload; then the telemetry store hangs and the page
// says its figures are stale; then the server goes away and the page says
// it is unreachable.
func TestBrowserLive(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	ctx, _ := tab(t)
	// The hour: the fixture's first events leave it only after a minute.
	login(t, ctx, s, "range=1h")
	before := readShown(t, ctx).Values
	if before["kpi-live-connections"] != "0" {
		t.Fatalf("live connections before: %q", before["kpi-live-connections"])
	}
	tk, err := client.NewProducer(s.URL, apiKey).CreateJob(context.Background(), client.CreateJobRequest{Pipeline: "csv_import", TotalCount: 10})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ws, resp, err := websocket.DefaultDialer.Dial(tk.WebsocketURL+"&token="+tk.Token+"&networkType=wifi&appVersion=9.9.9", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	defer ws.Close()
	wantConns := strconv.FormatFloat(num(t, before["kpi-connections"])+1, 'f', -1, 64)
	run(t, ctx, "wait for the new connection", chromedp.Poll[chromedp.Void](fmt.Sprintf(`(() => {
		const v = (id) => document.getElementById(id).dataset.value;
		return v('kpi-live-connections') === '1' && v('kpi-connections') === %q;
	})()`, wantConns), chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(liveWithin)))
	t.Logf("the new connection showed after %s", time.Since(start).Round(time.Millisecond))

	// The telemetry store hangs: no fresh figures, and the page says they
	// are stale; then they come back.
	start = time.Now()
	s.store.hold()
	run(t, ctx, "wait for stale", chromedp.Poll[chromedp.Void](
		`document.querySelector('.status.stale') !== null && document.getElementById('status-text').textContent.startsWith('Stale')`,
		chromedp.WithPollingTimeout(2*liveWithin)))
	t.Logf("the page said stale after %s", time.Since(start).Round(time.Millisecond))
	s.store.release()
	run(t, ctx, "wait for live again", chromedp.Poll[chromedp.Void](`document.querySelector('.status.live') !== null`,
		chromedp.WithPollingTimeout(liveWithin)))

	// The server goes away: the page says it is unreachable.
	start = time.Now()
	s.dash.Close()
	s.srv.CloseClientConnections()
	s.srv.Close()
	run(t, ctx, "wait for unreachable", chromedp.Poll[chromedp.Void](
		`document.querySelector('.status.unreachable') !== null && document.getElementById('status-text').textContent.includes('unreachable')`,
		chromedp.WithPollingTimeout(liveWithin)))
	t.Logf("the page said unreachable after %s", time.Since(start).Round(time.Millisecond))
}

// TestBrowserNoLogin: without the token the page shows a login form and no
// figures, and the data endpoints refuse the browser.
func TestBrowserNoLogin(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	ctx, _ := tab(t)
	run(t, ctx, "open the dashboard", chromedp.Navigate(s.URL+"/dashboard?range=24h"), chromedp.WaitVisible(chromedp.ID("token")))
	type page struct {
		Path, Text string
		Figures    int
		Status     int
	}
	check := func(what string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		p, err := chromedp.Run(ctx, chromedp.Evaluate[page](`(async () => {
			const r = await fetch('/dashboard/api/overview?range=1h');
			return {Path: location.pathname + location.search, Text: document.body.innerText,
				Figures: document.querySelectorAll('.kpi-value, table').length, Status: r.status};
		})()`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !strings.HasPrefix(p.Path, "/dashboard/login?next=") || p.Figures != 0 || p.Status != http.StatusUnauthorized ||
			strings.Contains(p.Text, "Connection health") || !strings.Contains(p.Text, "the admin token") {
			t.Errorf("%s: %+v", what, p)
		}
	}
	check("without a login")
	run(t, ctx, "log in with a wrong token",
		chromedp.SendKeys(chromedp.ID("token"), "not-the-token"),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("login-error")),
	)
	if p := eval[string](t, ctx, `location.pathname`); p != "/dashboard/login" {
		t.Errorf("after a wrong token the browser is at %s", p)
	}
	// The form posts to /dashboard/login; the page it answers has no data.
	if n := eval[int](t, ctx, `document.querySelectorAll('.kpi-value, table').length`); n != 0 {
		t.Errorf("%d figures after a wrong token", n)
	}
	run(t, ctx, "back to the dashboard", chromedp.Navigate(s.URL+"/dashboard?range=24h"), chromedp.WaitVisible(chromedp.ID("token")))
	check("after a wrong token")

	// Log in, then out through the header's form: it carries the
	// session's CSRF token and the page's origin, so the server ends the
	// session.
	login(t, ctx, s, "range=24h")
	run(t, ctx, "log out", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("token")))
	st, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch('/dashboard/api/overview?range=1h').then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || st != http.StatusUnauthorized {
		t.Errorf("after logout the data endpoint answers %d (%v)", st, err)
	}
}
