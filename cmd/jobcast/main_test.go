package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/duckdb"
	"github.com/jobcast/jobcast/internal/syncbuf"
	"github.com/jobcast/jobcast/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is an io.Writer tests can read while Main writes to it.
type syncBuffer struct{ syncbuf.Buffer }

// waitFor polls the buffer until re matches, and returns the submatches.
func (b *syncBuffer) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("output never matched %s:\n%s", re, b.String())
	return nil
}

func mapEnv(m map[string]string) envLookup {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

var servingRE = regexp.MustCompile(`serving on (http://127\.0\.0\.1:\d+)`)

// runMain starts Main with args in the background and returns its output and
// a stop function that cancels it and returns the exit code.
func runMain(t *testing.T, args []string, env map[string]string) (*syncBuffer, *syncBuffer, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	code := make(chan int, 1)
	go func() { code <- Main(ctx, args, mapEnv(env), stdout, stderr) }()
	var once sync.Once
	var rc int
	stop := func() int {
		once.Do(func() {
			cancel()
			select {
			case rc = <-code:
			case <-time.After(20 * time.Second):
				t.Fatalf("Main did not stop; stderr:\n%s", stderr.String())
			}
		})
		return rc
	}
	t.Cleanup(func() { stop() })
	return stdout, stderr, stop
}

func TestServeFirstStartGeneratesKeyAndServes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stdout, stderr, stop := runMain(t, []string{"serve", "-addr", "127.0.0.1:0", "-data-dir", dir}, nil)
	base := stdout.waitFor(t, servingRE)[1]
	key := stdout.waitFor(t, regexp.MustCompile(`\n\s+(jc_[a-z0-9]+)\n`))[1]

	ctx := context.Background()
	p := client.NewProducer(base, key)
	tk, err := p.CreateJob(ctx, client.CreateJobRequest{Pipeline: "csv_import", TotalCount: 10})
	if err != nil {
		t.Fatalf("create job with the generated key: %v", err)
	}
	if !strings.HasPrefix(tk.WebsocketURL, "ws://127.0.0.1:") || !strings.Contains(tk.WebsocketURL, tk.JobID) {
		t.Errorf("websocketUrl = %q", tk.WebsocketURL)
	}
	if _, err := client.NewProducer(base, "jc_wrong_key_0000000000").CreateJob(ctx, client.CreateJobRequest{Pipeline: "x"}); err == nil {
		t.Error("a wrong API key was accepted")
	}
	if rc := stop(); rc != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", rc, stderr.String())
	}
	// The key is stored only as a hash; the admin token and key ring exist.
	data, err := os.ReadFile(filepath.Join(dir, "api-keys"))
	if err != nil || strings.Contains(string(data), key) || len(strings.TrimSpace(string(data))) != 64 {
		t.Errorf("api-keys file = %q, %v; want one sha256 hex hash", data, err)
	}
	for _, f := range []string{"admin-token", "jwt-keys.json", "jobcast.db"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("data dir lacks %s: %v", f, err)
		}
	}

	// The second start prints no key: it was shown once.
	stdout2, _, stop2 := runMain(t, []string{"serve", "-addr", "127.0.0.1:0", "-data-dir", dir}, nil)
	base2 := stdout2.waitFor(t, servingRE)[1]
	if strings.Contains(stdout2.String(), "jc_") {
		t.Errorf("second start printed a key again:\n%s", stdout2.String())
	}
	if _, err := client.NewProducer(base2, key).GetJob(ctx, tk.JobID); err != nil {
		t.Errorf("the generated key stopped working after restart: %v", err)
	}
	stop2()
}

// TestRestartMidJobLosesNothing stops the server mid-job and starts it again
// on the same data dir: the job state, the message log and the token
// survive, and a resuming client receives what it missed.
func TestRestartMidJobLosesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"JOBCAST_API_KEYS": "restart-test-key-0123456789", "JOBCAST_DATA_DIR": dir}
	stdout, _, stop := runMain(t, []string{"serve", "-addr", "127.0.0.1:0"}, env)
	base := stdout.waitFor(t, servingRE)[1]
	ctx := context.Background()
	p := client.NewProducer(base, env["JOBCAST_API_KEYS"])
	tk, err := p.CreateJob(ctx, client.CreateJobRequest{Pipeline: "ai_scan", TotalCount: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.SendEvents(ctx, tk.JobID, []protocol.ProducerEvent{
		client.NewEvent("started", map[string]any{"totalCount": 4}),
		client.NewEvent("progress", map[string]any{"processedCount": 2}),
		client.NewEvent("error", map[string]any{"code": "E_GEMINI_TIMEOUT", "retryable": true}),
	}); err != nil {
		t.Fatal(err)
	}
	if rc := stop(); rc != 0 {
		t.Fatalf("exit code %d", rc)
	}

	stdout2, _, stop2 := runMain(t, []string{"serve", "-addr", "127.0.0.1:0"}, env)
	base2 := stdout2.waitFor(t, servingRE)[1]
	p2 := client.NewProducer(base2, env["JOBCAST_API_KEYS"])
	st, err := p2.GetJob(ctx, tk.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Seq != 3 || st.ProcessedCount != 2 || st.LastError == nil || st.LastError.Code != "E_GEMINI_TIMEOUT" {
		t.Fatalf("state after restart = %+v", st)
	}
	if _, err := p2.SendEvent(ctx, tk.JobID, client.NewEvent("completed", map[string]any{"successCount": 4})); err != nil {
		t.Fatal(err)
	}
	// The token minted before the restart still opens the job, and a
	// client that had seen seq 1 gets the error, the latest progress and
	// the terminal message.
	var got []protocol.Envelope
	w, err := client.NewWatcher(client.Config{
		URL: "ws" + strings.TrimPrefix(base2, "http") + "/ws/progress", JobID: tk.JobID, Token: tk.Token,
		OnMessage: func(e protocol.Envelope) { got = append(got, e) },
	})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := w.Run(wctx); err != nil {
		t.Fatalf("watch after restart: %v", err)
	}
	var types []string
	for _, e := range got {
		types = append(types, e.Type)
	}
	want := "job_started job_progress error job_completed"
	if strings.Join(types, " ") != want {
		t.Errorf("replayed %v, want %s", types, want)
	}
	if w.State().Status != protocol.StatusCompleted || w.State().Seq != 4 {
		t.Errorf("final state %+v", w.State())
	}
	stop2()
}

func TestDemoRunsAndLosesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	rc := Main(context.Background(), []string{"demo", "-addr", "127.0.0.1:0", "-data-dir", dir,
		"-duration", "6s", "-speed", "4", "-jobs", "2", "-status-every", "2s"}, mapEnv(nil), stdout, stderr)
	out := stdout.String()
	if rc != 0 {
		t.Fatalf("demo exit code %d\nstdout:\n%s\nstderr:\n%s", rc, out, stderr.String())
	}
	m := regexp.MustCompile(`demo stopped: (\d+) jobs completed, (\d+) failed, (\d+) client drops, (\d+) resumes, (\d+) messages delivered, 0 lost, 0 mismatched`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no clean summary line:\n%s", out)
	}
	if m[1] == "0" || m[4] == "0" || m[5] == "0" {
		t.Errorf("demo made too little happen (completed=%s resumes=%s messages=%s):\n%s", m[1], m[4], m[5], out)
	}
	for _, want := range []string{"admin token", "API key", "[demo 2s]"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}

func TestConfigPrecedence(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "jobcast.yaml")
	if err := os.WriteFile(file, []byte("addr: \":7000\"\nthrottle: 250ms\nheartbeatInterval: 20s\ntokenTTL: 2h\napiKeys: [\"file-key-0123456789abc\"]\nerrors:\n  E_CUSTOM:\n    message: Custom\n    retryable: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newServeFlags("serve")
	if err := f.fs.Parse([]string{"-config", file, "-heartbeat-interval", "5s"}); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := f.load(mapEnv(map[string]string{"JOBCAST_THROTTLE_MS": "100", "JOBCAST_HEARTBEAT_INTERVAL_MS": "9000"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":7000" {
		t.Errorf("addr from file = %q", cfg.Addr)
	}
	if cfg.Throttle != 100*time.Millisecond {
		t.Errorf("env should beat file: throttle = %s", cfg.Throttle)
	}
	if cfg.HeartbeatInterval != 5*time.Second {
		t.Errorf("flag should beat env: heartbeat = %s", cfg.HeartbeatInterval)
	}
	if cfg.TokenTTL != 2*time.Hour || len(cfg.APIKeys) != 1 || cfg.Errors["E_CUSTOM"].Message != "Custom" {
		t.Errorf("file values lost: %+v", cfg)
	}
	if cfg.PongTimeout != 10*time.Second || cfg.DataDir != "./jobcast-data" {
		t.Errorf("defaults not applied: pong %s dir %s", cfg.PongTimeout, cfg.DataDir)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badYAML, []byte("addr: [\n"), 0o600)
	unknownKey := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknownKey, []byte("heartbeat: 5s\n"), 0o600)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"env not a number", nil, map[string]string{"JOBCAST_THROTTLE_MS": "fast"}, "JOBCAST_THROTTLE_MS must be a whole number"},
		{"zero heartbeat env", nil, map[string]string{"JOBCAST_HEARTBEAT_INTERVAL_MS": "0"}, "JOBCAST_HEARTBEAT_INTERVAL_MS must be at least 1 millisecond"},
		{"bad shutdown delay", nil, map[string]string{"JOBCAST_SHUTDOWN_DELAY": "soon"}, "JOBCAST_SHUTDOWN_DELAY must be a duration"},
		{"bad ttl", nil, map[string]string{"JOBCAST_TOKEN_TTL": "forever"}, "JOBCAST_TOKEN_TTL must be a duration"},
		{"short secret", nil, map[string]string{"JOBCAST_JWT_SECRET": "short"}, "JWT secret must be at least 32 bytes"},
		{"short api key", []string{"-api-keys", "abc"}, nil, "API keys must be at least 16 characters"},
		{"heartbeat too small", []string{"-heartbeat-interval", "1ms"}, nil, "below 100ms"},
		{"missing file", []string{"-config", filepath.Join(dir, "nope.yaml")}, nil, "read config"},
		{"malformed file", []string{"-config", badYAML}, nil, "bad.yaml"},
		{"unknown key", []string{"-config", unknownKey}, nil, "field heartbeat not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newServeFlags("serve")
			if err := f.fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			_, _, err := f.load(mapEnv(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestKeysRotate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out bytes.Buffer
	for i := 0; i < 2; i++ {
		if rc := Main(context.Background(), []string{"keys", "rotate", "-data-dir", dir}, mapEnv(nil), &out, &out); rc != 0 {
			t.Fatalf("rotate exit %d: %s", rc, out.String())
		}
	}
	if n := strings.Count(out.String(), "added signing key k-"); n != 2 {
		t.Errorf("output:\n%s", out.String())
	}
	data, _ := os.ReadFile(filepath.Join(dir, "jwt-keys.json"))
	if strings.Count(string(data), `"kid"`) != 2 {
		t.Errorf("key ring has not 2 keys:\n%s", data)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if rc := Main(context.Background(), nil, mapEnv(nil), &out, &errb); rc != 2 || !strings.Contains(errb.String(), "jobcast serve") {
		t.Errorf("no args: rc=%d stderr=%q", rc, errb.String())
	}
	if rc := Main(context.Background(), []string{"frobnicate"}, mapEnv(nil), &out, &errb); rc != 2 || !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: rc=%d", rc)
	}
}

// With a shutdown delay, a stopping node first fails /readyz while it keeps
// serving producers, then drains and exits.
func TestShutdownDelay(t *testing.T) {
	t.Parallel()
	env := map[string]string{"JOBCAST_API_KEYS": "delay-test-key-0123456789", "JOBCAST_SHUTDOWN_DELAY": "3s"}
	stdout, stderr, stop := runMain(t, []string{"serve", "-addr", "127.0.0.1:0", "-data-dir", t.TempDir()}, env)
	base := stdout.waitFor(t, servingRE)[1]
	readyz := func() int {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := readyz(); got != 200 {
		t.Fatalf("readyz before shutdown: %d", got)
	}
	exited := make(chan int, 1)
	go func() { exited <- stop() }()
	deadline := time.Now().Add(3 * time.Second)
	for readyz() != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("readyz never failed during the shutdown delay")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Still serving producers during the delay.
	if _, err := client.NewProducer(base, env["JOBCAST_API_KEYS"]).CreateJob(context.Background(),
		client.CreateJobRequest{Pipeline: "csv_import"}); err != nil {
		t.Errorf("producer refused during the shutdown delay: %v", err)
	}
	select {
	case rc := <-exited:
		if rc != 0 {
			t.Fatalf("exit %d: %s", rc, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not exit after the delay")
	}
}

// A served job's telemetry lands in the data dir's DuckDB file, and the live
// counters are on /metrics behind the admin token.
func TestServeRecordsTelemetry(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"JOBCAST_API_KEYS": "telemetry-test-key-0123456789", "JOBCAST_ADMIN_TOKEN": "telemetry-admin-0123456789"}
	stdout, stderr, stop := runMain(t, []string{"serve", "-addr", "127.0.0.1:0", "-data-dir", dir}, env)
	base := stdout.waitFor(t, servingRE)[1]
	ctx := context.Background()
	p := client.NewProducer(base, env["JOBCAST_API_KEYS"])
	tk, err := p.CreateJob(ctx, client.CreateJobRequest{Pipeline: "ai_scan", TotalCount: 3})
	if err != nil {
		t.Fatal(err)
	}
	w, err := client.NewWatcher(client.Config{URL: tk.WebsocketURL, Token: tk.Token,
		Context: client.ClientContext{NetworkType: "cellular", AppVersion: "3.4.0"}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for w.Stats().Connects == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := p.SendEvents(ctx, tk.JobID, []protocol.ProducerEvent{
		client.NewEvent("started", map[string]any{"totalCount": 3}),
		client.NewEvent("error", map[string]any{"code": "E_GEMINI_TIMEOUT", "retryable": true, "details": map[string]any{"provider": "gemini"}}),
		client.NewEvent("completed", map[string]any{"successCount": 3}),
	}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A wrong token is a connect_failed.
	if _, resp, err := websocket.DefaultDialer.Dial(tk.WebsocketURL+"&token=garbage", nil); err == nil {
		t.Fatal("garbage token accepted")
	} else if resp != nil {
		resp.Body.Close()
	}

	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+env["JOBCAST_ADMIN_TOKEN"])
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`jobcast_connection_events_total{event="connected",network_type="cellular"} 1`,
		`jobcast_errors_total{code="E_GEMINI_TIMEOUT"} 1`, `jobcast_connect_failures_total{reason="token_invalid"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if resp, err := hc.Get(base + "/metrics"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without the admin token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// POST /v1/sql answers read-only SQL on events, after the recorder's
	// flush interval has passed, and refuses everything else.
	sqlAt := func(body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/v1/sql", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+env["JOBCAST_ADMIN_TOKEN"])
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		status, out := sqlAt(`SELECT count(*) AS n FROM events WHERE event = 'job_completed'`)
		if status != 200 {
			t.Fatalf("SQL: %d %v", status, out)
		}
		if data, _ := out["data"].([]any); len(data) == 1 && data[0].(map[string]any)["n"] == float64(1) {
			if out["dialect"] != "duckdb" || out["columns"].([]any)[0] != "n" {
				t.Errorf("SQL answer %v", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job_completed never reached the store: %v", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, bad := range []string{
		`{"query":"SELECT * FROM read_csv('/etc/passwd')"}`,
		`DELETE FROM events`,
		`ATTACH '/tmp/x.db' AS x`,
		`COPY events TO '/tmp/out.csv'`,
	} {
		if status, out := sqlAt(bad); status != 400 {
			t.Errorf("%s: %d %v, want 400", bad, status, out)
		}
	}

	if rc := stop(); rc != 0 {
		t.Fatalf("exit %d: %s", rc, stderr.String())
	}
	store, err := duckdb.Open(ctx, filepath.Join(dir, "telemetry.duckdb"), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rows, err := store.Query(ctx, `SELECT event, count(*) FROM events GROUP BY event ORDER BY event`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range rows.Rows {
		got[r[0].(string)] = r[1].(int64)
	}
	want := map[string]int64{"connected": 1, "disconnected": 1, "connect_failed": 1, "job_started": 1, "error": 1, "job_completed": 1}
	for ev, n := range want {
		if got[ev] != n {
			t.Errorf("%s events stored: %d, want %d (all: %v)", ev, got[ev], n, got)
		}
	}
}
