package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/duckdb"
	"github.com/jobcast/jobcast/protocol"
)

// faultChildEnv holds, JSON-encoded, the arguments of a jobcast process the
// fault tests start. The process is this test binary re-run with
// -test.run=^TestFaultChild$, which does what main does: Main with a context
// that SIGTERM and SIGINT cancel. It is a real process, so it can be killed
// with SIGKILL, and it needs no second build of the (cgo, DuckDB) binary.
const faultChildEnv = "JOBCAST_FAULT_CHILD_ARGS"

// TestFaultChild is the server process of the fault tests, not a test: in
// a normal run it returns at once.
func TestFaultChild(t *testing.T) {
	raw := os.Getenv(faultChildEnv)
	if raw == "" {
		return
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		fmt.Fprintln(os.Stderr, "fault child args:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	rc := Main(ctx, args, os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(rc)
}

// proc is one jobcast process started by a fault test.
type proc struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	rc     int
}

// startProc starts `jobcast args…` as a child process with env added to
// this process's environment.
func startProc(t *testing.T, args []string, env map[string]string) *proc {
	t.Helper()
	enc, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^TestFaultChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), faultChildEnv+"="+string(enc))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &proc{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			p.rc = ee.ExitCode() // -1 when a signal killed it
		case err != nil:
			p.rc = -2
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // no-op once it exited
		<-p.done
	})
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		return p.rc
	case <-time.After(30 * time.Second):
		t.Fatalf("process did not exit; stderr:\n%s", p.stderr.String())
		return 0
	}
}

// serve starts `jobcast serve` on addr and returns the process and its base
// URL once it serves.
func serve(t *testing.T, addr string, env map[string]string) (*proc, string) {
	t.Helper()
	p := startProc(t, []string{"serve", "-addr", addr}, env)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m := servingRE.FindStringSubmatch(p.stdout.String()); m != nil {
			return p, m[1]
		}
		select {
		case <-p.done:
			t.Fatalf("serve exited with %d before serving; stderr:\n%s", p.rc, p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("serve never served; stderr:\n%s", p.stderr.String())
	return nil, ""
}

// adminSQL runs SQL through POST /v1/sql and returns the first row.
func adminSQL(t *testing.T, base, token, query string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/sql", strings.NewReader(query))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data []map[string]any `json:"data"`
	}
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &out); err != nil || resp.StatusCode != 200 || len(out.Data) == 0 {
		t.Fatalf("SQL %q: %d %s", query, resp.StatusCode, body)
	}
	return out.Data[0]
}

// poll calls cond until it is true or the deadline passes.
func poll(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// watched is an SDK watcher the fault tests run, with what it saw.
type watched struct {
	w      *client.Watcher
	done   chan error
	mu     sync.Mutex
	seqs   []int64 // of every job message, in order
	closes []int   // close codes of its disconnects
}

func (x *watched) closeCodes() []int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]int(nil), x.closes...)
}

func (x *watched) messageSeqs() []int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]int64(nil), x.seqs...)
}

func watch(t *testing.T, tk *client.Ticket) *watched {
	t.Helper()
	x := &watched{done: make(chan error, 1)}
	w, err := client.NewWatcher(client.Config{
		URL: tk.WebsocketURL, Token: tk.Token, MinBackoff: 50 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
		OnMessage: func(e protocol.Envelope) {
			x.mu.Lock()
			x.seqs = append(x.seqs, e.Seq)
			x.mu.Unlock()
		},
		OnEvent: func(e client.Event) {
			if e.Kind == "disconnected" {
				x.mu.Lock()
				x.closes = append(x.closes, e.CloseCode)
				x.mu.Unlock()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	x.w = w
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	go func() { x.done <- w.Run(ctx) }()
	poll(t, "the watcher to connect", 20*time.Second, func() bool { return w.Stats().Connects > 0 })
	return x
}

// finish completes the job and checks the watcher ends with the server's
// final state, having seen every message the server's log replays.
func finish(t *testing.T, p *client.Producer, base string, tk *client.Ticket, x *watched) {
	t.Helper()
	ctx := context.Background()
	if _, err := p.SendEvent(ctx, tk.JobID, client.NewEvent("completed", map[string]any{"successCount": 1})); err != nil {
		t.Fatalf("complete %s: %v", tk.JobID, err)
	}
	select {
	case err := <-x.done:
		if err != nil {
			t.Fatalf("watcher of %s: %v", tk.JobID, err)
		}
	case <-time.After(30 * time.Second):
		seqs := x.messageSeqs()
		last := int64(-1)
		if len(seqs) > 0 {
			last = seqs[len(seqs)-1]
		}
		t.Fatalf("watcher of %s never saw the end: %d messages, last seq %d, close codes %v, state %+v, stats %+v",
			tk.JobID, len(seqs), last, x.closeCodes(), x.w.State(), x.w.Stats())
	}
	st, err := p.GetJob(ctx, tk.JobID)
	if err != nil {
		t.Fatal(err)
	}
	got := x.w.State()
	if got.Seq != st.Seq || got.Status != st.Status || got.ProcessedCount != st.ProcessedCount {
		t.Errorf("job %s: watcher ended with seq %d %s processed %d, server has seq %d %s processed %d",
			tk.JobID, got.Seq, got.Status, got.ProcessedCount, st.Seq, st.Status, st.ProcessedCount)
	}
	// A fresh watcher replays the log from seq 0: every error and the
	// terminal message. The old watcher must have seen each of them.
	var log []int64
	w2, err := client.NewWatcher(client.Config{URL: strings.Replace(base, "http", "ws", 1) + "/ws/progress", JobID: tk.JobID, Token: tk.Token,
		TokenIn: "query", // the riskiest place for a token: it must not reach the log
		OnMessage: func(e protocol.Envelope) {
			if e.Type != protocol.TypeJobProgress {
				log = append(log, e.Seq)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := w2.Run(wctx); err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for _, s := range x.messageSeqs() {
		seen[s] = true
	}
	for _, s := range log {
		if !seen[s] {
			t.Errorf("job %s: the watcher missed message seq %d of the log %v", tk.JobID, s, log)
		}
	}
}

// noSecrets fails the test if a secret appears in the process's output
// (the log runs at debug level in these tests): not the API key, the
// admin token, or a client token, wherever it travelled.
func noSecrets(t *testing.T, p *proc, secrets ...string) {
	t.Helper()
	out := p.stdout.String() + p.stderr.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Errorf("a secret (%.6s…) is in the server's output", s)
		}
	}
}

// tokens returns the client tokens of tickets.
func tokens(tickets []*client.Ticket) []string {
	var out []string
	for _, tk := range tickets {
		out = append(out, tk.Token)
	}
	return out
}

// loadProducer posts events to one job until it fails: started, then
// progress, with an error event every fifth. It reports the highest seq
// the server acknowledged, the seqs of acknowledged error events, and how
// the loop ended.
type loadProducer struct {
	mu      sync.Mutex
	acked   int64
	errSeqs []int64
	end     error
	done    chan struct{}
}

func (l *loadProducer) ackedSeq() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked
}

func produce(p *client.Producer, jobID string) *loadProducer {
	l := &loadProducer{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		ctx := context.Background()
		for i := 0; ; i++ {
			ev := client.NewEvent("progress", map[string]any{"processedCount": i})
			switch {
			case i == 0:
				ev = client.NewEvent("started", map[string]any{"totalCount": 100000})
			case i%5 == 0:
				ev = client.NewEvent("error", map[string]any{"code": "E_FAULT_TEST", "message": fmt.Sprint("error ", i), "retryable": true})
			}
			res, err := p.SendEvent(ctx, jobID, ev)
			if err != nil {
				l.mu.Lock()
				l.end = err
				l.mu.Unlock()
				return
			}
			l.mu.Lock()
			l.acked = res.Seq
			if ev.Type == "error" {
				l.errSeqs = append(l.errSeqs, res.Seq)
			}
			l.mu.Unlock()
			if i == 2000 { // a bound, should the kill never come
				return
			}
		}
	}()
	return l
}

// TestFaultKillMidLoad kills `jobcast serve` with SIGKILL while producers
// post events and SDK watchers follow the jobs, and restarts it on the same
// data dir and address: every acknowledged event is in the job's state and
// message log, both stores open, DuckDB keeps every event it had flushed
// before the kill, and the watchers resume and end with the server's final
// state, having missed nothing. No key or token reaches the debug log.
func TestFaultKillMidLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"JOBCAST_API_KEYS": "fault-kill-key-0123456789", "JOBCAST_ADMIN_TOKEN": "fault-kill-admin-0123456789",
		"JOBCAST_DATA_DIR": dir, "JOBCAST_HEARTBEAT_INTERVAL_MS": "1000", "JOBCAST_THROTTLE_MS": "50", "JOBCAST_LOG_LEVEL": "debug"}
	p1, base := serve(t, "127.0.0.1:0", env)
	ctx := context.Background()
	prod := client.NewProducer(base, env["JOBCAST_API_KEYS"])
	const jobs = 3
	tickets := make([]*client.Ticket, jobs)
	watchers := make([]*watched, jobs)
	for i := range tickets {
		tk, err := prod.CreateJob(ctx, client.CreateJobRequest{Pipeline: "csv_import", TotalCount: 100000})
		if err != nil {
			t.Fatal(err)
		}
		tickets[i], watchers[i] = tk, watch(t, tk)
	}
	loads := make([]*loadProducer, jobs)
	for i, tk := range tickets {
		loads[i] = produce(prod, tk.JobID)
	}
	poll(t, "load", 20*time.Second, func() bool {
		for _, l := range loads {
			if l.ackedSeq() < 20 {
				return false
			}
		}
		return true
	})
	// What DuckDB holds at the kill: the connects and the first errors
	// (the recorder flushes every second), and then some.
	var before float64
	poll(t, "telemetry to reach DuckDB", 15*time.Second, func() bool {
		row := adminSQL(t, base, env["JOBCAST_ADMIN_TOKEN"], `SELECT count(*) AS n, count(*) FILTER (WHERE event = 'error') AS errors FROM events`)
		before, _ = row["n"].(float64)
		errs, _ := row["errors"].(float64)
		return errs >= 2*jobs
	})
	if err := p1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if rc := p1.wait(t); rc != -1 {
		t.Fatalf("exit code after SIGKILL = %d", rc)
	}
	for _, l := range loads {
		<-l.done
		if l.end == nil {
			t.Fatal("a producer posted 2000 events before the kill; the test is too slow to mean anything")
		}
	}

	// Same data dir, same address: the watchers reconnect to it.
	p2, base2 := serve(t, strings.TrimPrefix(base, "http://"), env)
	prod2 := client.NewProducer(base2, env["JOBCAST_API_KEYS"])
	for i, tk := range tickets {
		st, err := prod2.GetJob(ctx, tk.JobID)
		if err != nil {
			t.Fatalf("job %s after the kill: %v", tk.JobID, err)
		}
		acked := loads[i].ackedSeq()
		// The one event in flight at the kill may or may not have
		// committed; nothing acknowledged may be missing.
		if st.Seq < acked || st.Seq > acked+1 || st.Status != protocol.StatusRunning {
			t.Errorf("job %s after the kill: seq %d (%s); the producer had %d acknowledged", tk.JobID, st.Seq, st.Status, acked)
		}
		if st.Seq%5 != 1 && st.ProcessedCount != st.Seq-1 { // the last event was a progress
			t.Errorf("job %s after the kill: processedCount %d at seq %d: state and log disagree", tk.JobID, st.ProcessedCount, st.Seq)
		}
		t.Logf("job %s: %d events acknowledged before SIGKILL, seq %d after restart", tk.JobID, acked, st.Seq)
	}
	for i, tk := range tickets {
		finish(t, prod2, base2, tk, watchers[i])
		seen := map[int64]bool{}
		for _, s := range watchers[i].messageSeqs() {
			seen[s] = true
		}
		for _, s := range loads[i].errSeqs {
			if !seen[s] {
				t.Errorf("job %s: the watcher never got the acknowledged error at seq %d", tk.JobID, s)
			}
		}
		if st := watchers[i].w.Stats(); st.Resumes == 0 {
			t.Errorf("job %s: the watcher never resumed: %+v", tk.JobID, st)
		}
	}
	// DuckDB opened (the node serves SQL) and kept what it had flushed.
	after, _ := adminSQL(t, base2, env["JOBCAST_ADMIN_TOKEN"], `SELECT count(*) AS n FROM events`)["n"].(float64)
	if after < before {
		t.Errorf("DuckDB held %v events before SIGKILL and %v after the restart", before, after)
	}
	t.Logf("telemetry events: %v flushed before SIGKILL, %v after restart (with the restart's own)", before, after)
	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if rc := p2.wait(t); rc != 0 {
		t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", rc, p2.stderr.String())
	}
	for _, p := range []*proc{p1, p2} {
		noSecrets(t, p, append(tokens(tickets), env["JOBCAST_API_KEYS"], env["JOBCAST_ADMIN_TOKEN"])...)
	}
}

// TestFaultGracefulShutdown sends SIGTERM to `jobcast serve` with watchers
// and a client that stopped reading connected, and a producer posting: every
// client gets close code 1001, the producer sees only 202s, 503s with
// Retry-After (at least one, while the stalled client holds the drain
// open), then a refused connection,
// the process exits 0, and the disconnects of all watchers are in DuckDB.
// Restarted, the watchers resume and miss nothing. No key or token reaches
// the debug log.
func TestFaultGracefulShutdown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"JOBCAST_API_KEYS": "fault-term-key-0123456789", "JOBCAST_ADMIN_TOKEN": "fault-term-admin-0123456789",
		"JOBCAST_DATA_DIR": dir, "JOBCAST_THROTTLE_MS": "50", "JOBCAST_LOG_LEVEL": "debug"}
	p1, base := serve(t, "127.0.0.1:0", env)
	ctx := context.Background()
	prod := client.NewProducer(base, env["JOBCAST_API_KEYS"])
	const jobs = 3
	tickets := make([]*client.Ticket, jobs)
	watchers := make([]*watched, jobs)
	for i := range tickets {
		tk, err := prod.CreateJob(ctx, client.CreateJobRequest{Pipeline: "ai_scan", TotalCount: 10})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := prod.SendEvent(ctx, tk.JobID, client.NewEvent("started", map[string]any{"totalCount": 10})); err != nil {
			t.Fatal(err)
		}
		tickets[i], watchers[i] = tk, watch(t, tk)
	}
	// A raw client that stops reading holds the close handshake open for
	// its 2 s grace: the drain window in which producers must get 503.
	raw, resp, err := websocket.DefaultDialer.Dial(tickets[1].WebsocketURL, http.Header{"Authorization": {"Bearer " + tickets[1].Token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	defer raw.Close()
	// A producer posts as fast as it can through the shutdown.
	type outcome struct{ ok, unavailable, refused int }
	var out outcome
	var bad []string
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		hc := &http.Client{Timeout: 5 * time.Second}
		for i := 1; ; i++ {
			body := fmt.Sprintf(`{"type":"progress","payload":{"processedCount":%d}}`, i%10)
			req, _ := http.NewRequest("POST", base+"/v1/jobs/"+tickets[0].JobID+"/events", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+env["JOBCAST_API_KEYS"])
			resp, err := hc.Do(req)
			if err != nil {
				var op *net.OpError
				if errors.As(err, &op) || errors.Is(err, io.EOF) || strings.Contains(err.Error(), "connection reset") {
					out.refused++
					if out.refused > 3 {
						return
					}
					continue
				}
				bad = append(bad, err.Error())
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusAccepted:
				out.ok++
			case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
				out.unavailable++
				// Back off a little, as a producer would, and stay
				// under the per-IP request rate.
				time.Sleep(10 * time.Millisecond)
			default:
				bad = append(bad, fmt.Sprintf("%d Retry-After=%q", resp.StatusCode, resp.Header.Get("Retry-After")))
			}
		}
	}()
	poll(t, "the producer to post", 10*time.Second, func() bool {
		st, err := prod.GetJob(ctx, tickets[0].JobID)
		return err == nil && st.Seq > 5
	})
	if err := p1.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if rc := p1.wait(t); rc != 0 {
		t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", rc, p1.stderr.String())
	}
	<-stopped
	if len(bad) > 0 {
		t.Errorf("the producer got, during the shutdown: %v", bad)
	}
	t.Logf("producer during SIGTERM: %d accepted, %d × 503 with Retry-After, then the connection refused", out.ok, out.unavailable)
	if out.unavailable == 0 {
		t.Error("the producer never got a 503 during the drain")
	}
	// The frames the raw client never read end with the 1001 close.
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := raw.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != protocol.CloseGoingAway {
			t.Errorf("the client that stopped reading ended with %v, want close 1001", err)
		}
		break
	}
	for i, x := range watchers {
		poll(t, "the watcher to see the close", 10*time.Second, func() bool { return len(x.closeCodes()) > 0 })
		if codes := x.closeCodes(); codes[0] != protocol.CloseGoingAway {
			t.Errorf("watcher %d: close codes %v, want %d first", i, codes, protocol.CloseGoingAway)
		}
	}
	// The shutdown flushed the disconnects; read the file directly while
	// no process holds it.
	store, err := duckdb.Open(ctx, filepath.Join(dir, "telemetry.duckdb"), duckdb.Options{})
	if err != nil {
		t.Fatalf("DuckDB after SIGTERM: %v", err)
	}
	rows, err := store.Query(ctx, `SELECT count(*) FROM events WHERE event = 'disconnected' AND close_code = 1001`)
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	if n := rows.Rows[0][0].(int64); n != jobs+1 {
		t.Errorf("disconnected events with close code 1001 in DuckDB: %d, want %d (the watchers and the raw client)", n, jobs+1)
	}

	p2, base2 := serve(t, strings.TrimPrefix(base, "http://"), env)
	prod2 := client.NewProducer(base2, env["JOBCAST_API_KEYS"])
	for i, tk := range tickets {
		finish(t, prod2, base2, tk, watchers[i])
	}
	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if rc := p2.wait(t); rc != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", rc, p2.stderr.String())
	}
	for _, p := range []*proc{p1, p2} {
		noSecrets(t, p, append(tokens(tickets), env["JOBCAST_API_KEYS"], env["JOBCAST_ADMIN_TOKEN"])...)
	}
}

// TestFaultUnusableDataDir starts `jobcast serve` on data dirs it cannot use
// (running as root, chmod would not stop it, so the obstacles are ones root
// meets too): it exits 1 with a message naming the problem, never a panic.
func TestFaultUnusableDataDir(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir, want string
	}{
		{"data dir below a file", filepath.Join(file, "data"), "data dir " + filepath.Join(file, "data") + ": mkdir " + file + ": not a directory"},
		{"data dir is a file", file, "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := startProc(t, []string{"serve", "-addr", "127.0.0.1:0", "-data-dir", tt.dir}, map[string]string{"JOBCAST_API_KEYS": "fault-dir-key-0123456789"})
			rc := p.wait(t)
			stderr := p.stderr.String()
			if rc != 1 || !strings.Contains(stderr, tt.want) || strings.Contains(stderr, "panic") || strings.Contains(p.stdout.String(), "serving on") {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and %q", rc, stderr, tt.want)
			}
			t.Logf("stderr: %s", firstLine(stderr))
		})
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// TestFaultDiskFull runs `jobcast serve` on a data dir in a small tmpfs and
// fills it while a job is followed (root is not stopped by chmod, but a full
// file system stops everyone). Producers' events are accepted with
// durable:false and reach the connected client from memory, the log names
// the cause, failed telemetry writes are counted on /metrics, a client can
// connect, or resume with lastSeq, while the disk is full, and once space is
// freed the queued events are written to SQLite in order (a restarted
// server has them) and delivery and telemetry work on, with nothing
// acknowledged lost. Then the tmpfs is remounted read-only: serve refuses
// to start with a message naming it, and starts again once it is writable.
func TestFaultDiskFull(t *testing.T) {
	t.Parallel()
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt).CombinedOutput(); err != nil {
		if os.Getenv("JOBCAST_REQUIRE_INTEGRATION") != "" {
			t.Fatalf("cannot mount a tmpfs to fill, and JOBCAST_REQUIRE_INTEGRATION is set (CI runs as root): %v %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs to fill (needs root; set JOBCAST_REQUIRE_INTEGRATION=1 to make this a failure): %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	env := map[string]string{"JOBCAST_API_KEYS": "fault-full-key-0123456789", "JOBCAST_ADMIN_TOKEN": "fault-full-admin-0123456789",
		"JOBCAST_DATA_DIR": filepath.Join(mnt, "data"), "JOBCAST_THROTTLE_MS": "50"}
	p1, base := serve(t, "127.0.0.1:0", env)
	ctx := context.Background()
	prod := client.NewProducer(base, env["JOBCAST_API_KEYS"])
	tk, err := prod.CreateJob(ctx, client.CreateJobRequest{Pipeline: "csv_import", TotalCount: 100})
	if err != nil {
		t.Fatal(err)
	}
	x := watch(t, tk)
	if _, err := prod.SendEvent(ctx, tk.JobID, client.NewEvent("started", nil)); err != nil {
		t.Fatal(err)
	}
	telemetry := func() map[string]float64 {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+env["JOBCAST_ADMIN_TOKEN"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		out := map[string]float64{}
		for _, l := range strings.Split(string(b), "\n") {
			var v float64
			name, val, ok := strings.Cut(l, " ")
			if ok && strings.HasPrefix(name, "jobcast_telemetry") {
				fmt.Sscan(val, &v)
				out[strings.TrimPrefix(name, "jobcast_telemetry_")] = v
			}
		}
		return out
	}

	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	// Producers: a few events may still fit in pages SQLite holds; then
	// each is accepted with durable:false, applied and delivered from
	// memory, and queued until the disk takes writes again; never a 5xx.
	var durable, queued []int64 // seqs of the error events sent
	for len(queued) < 20 {
		seq, d := sendDurable(t, base, env["JOBCAST_API_KEYS"], tk.JobID,
			client.NewEvent("error", map[string]any{"code": "E_FULL_TEST", "message": strings.Repeat("x", 1000)}))
		if d {
			durable = append(durable, seq)
		} else {
			queued = append(queued, seq)
		}
		if len(durable) > 1000 {
			t.Fatal("1000 events fit on a full file system")
		}
	}
	last := queued[len(queued)-1]
	if !strings.Contains(p1.stderr.String(), "database or disk is full") || !strings.Contains(p1.stderr.String(), "the job store refuses writes") {
		t.Errorf("the log does not say the disk is full:\n%s", p1.stderr.String())
	}
	// The connected watcher gets every event sent while the disk is full.
	poll(t, "the watcher to get the events sent while the disk is full", 20*time.Second, func() bool {
		s := x.messageSeqs()
		return len(s) > 0 && s[len(s)-1] >= last
	})
	seen := map[int64]bool{}
	for _, s := range x.messageSeqs() {
		seen[s] = true
	}
	for _, s := range queued {
		if !seen[s] {
			t.Errorf("the watcher missed seq %d, sent while the disk was full", s)
		}
	}
	if n := diskFullMetric(t, base, env["JOBCAST_ADMIN_TOKEN"], "jobcast_job_writes_queued"); n < 1 {
		t.Errorf("jobcast_job_writes_queued %v while the disk is full", n)
	}
	// Telemetry: failed handshakes make events the full store cannot
	// take; the failures are counted, delivery does not wait for them.
	poll(t, "a failed telemetry write on /metrics", 20*time.Second, func() bool {
		for range 50 {
			if _, resp, err := websocket.DefaultDialer.Dial(tk.WebsocketURL+"&token=garbage", nil); err == nil {
				t.Fatal("garbage token accepted")
			} else if resp != nil {
				resp.Body.Close()
			}
		}
		return telemetry()["write_errors_total"] > 0
	})
	m := telemetry()
	t.Logf("full: %d events stored, then %d held in memory (durable:false); telemetry %v", len(durable), len(queued), m)
	if st := x.w.Stats(); st.Failures > 0 {
		t.Errorf("the watcher lost its connection while the disk was full: %+v", st)
	}
	// A new client can still connect and get the job's state and log;
	// one resuming from before the disk filled gets every queued event.
	late := watch(t, tk)
	resumeFrom := int64(1) // the started event
	if len(durable) > 0 {
		resumeFrom = durable[len(durable)-1]
	}
	if got := resumeLog(t, tk, resumeFrom, last); fmt.Sprint(got) != fmt.Sprint(queued) {
		t.Errorf("a client resuming after seq %d while the disk is full got %v, want %v", resumeFrom, got, queued)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	poll(t, "the queued writes to reach the disk", 20*time.Second, func() bool {
		return diskFullMetric(t, base, env["JOBCAST_ADMIN_TOKEN"], "jobcast_job_writes_queued") == 0
	})
	if n := diskFullMetric(t, base, env["JOBCAST_ADMIN_TOKEN"], "jobcast_job_writes_flushed_late_total"); n < float64(len(queued)) {
		t.Errorf("jobcast_job_writes_flushed_late_total %v, want >= %d", n, len(queued))
	}
	if !strings.Contains(p1.stderr.String(), "the job store takes writes again") {
		t.Errorf("the log does not say the disk took the queued writes:\n%s", p1.stderr.String())
	}
	if _, d := sendDurable(t, base, env["JOBCAST_API_KEYS"], tk.JobID, client.NewEvent("progress", map[string]any{"processedCount": 50})); !d {
		t.Error("an event after the disk recovered is not durable")
	}
	finish(t, prod, base, tk, x)
	select {
	case err := <-late.done:
		if err != nil || late.w.State().Status != protocol.StatusCompleted {
			t.Errorf("the client that connected while the disk was full: %v, %+v", err, late.w.State())
		}
	case <-time.After(20 * time.Second):
		t.Error("the client that connected while the disk was full never saw the end")
	}
	poll(t, "telemetry to be written again", 20*time.Second, func() bool {
		return telemetry()["events_total{outcome=\"written\"}"] > m["events_total{outcome=\"written\"}"]
	})
	t.Logf("after freeing: telemetry %v", telemetry())
	if err := p1.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if rc := p1.wait(t); rc != 0 {
		t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", rc, p1.stderr.String())
	}

	// The same data dir made read-only: serve refuses to start and says
	// why; writable again, it starts and has the job.
	if out, err := exec.Command("mount", "-o", "remount,ro", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v %s", err, out)
	}
	ro := startProc(t, []string{"serve", "-addr", "127.0.0.1:0"}, env)
	if rc := ro.wait(t); rc != 1 || !strings.Contains(ro.stderr.String(), "is not writable") ||
		!strings.Contains(ro.stderr.String(), "read-only file system") || strings.Contains(ro.stderr.String(), "panic") {
		t.Errorf("serve on a read-only data dir: exit %d, stderr:\n%s", rc, ro.stderr.String())
	}
	t.Logf("read-only data dir: %s", firstLine(ro.stderr.String()))
	if out, err := exec.Command("mount", "-o", "remount,rw", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount read-write: %v %s", err, out)
	}
	p2, base2 := serve(t, "127.0.0.1:0", env)
	if st, err := client.NewProducer(base2, env["JOBCAST_API_KEYS"]).GetJob(ctx, tk.JobID); err != nil || st.Status != protocol.StatusCompleted {
		t.Errorf("the job after the read-only episode: %+v %v", st, err)
	}
	// The restarted server read everything from SQLite: every event sent
	// while the disk was full is in the job's log, in order.
	tk2, err := client.NewProducer(base2, env["JOBCAST_API_KEYS"]).NewToken(ctx, tk.JobID)
	if err != nil {
		t.Fatal(err)
	}
	all := resumeLog(t, tk2, 0, 0)
	if i := slices.Index(all, queued[0]); i < 0 || fmt.Sprint(all[i:i+len(queued)]) != fmt.Sprint(queued) {
		t.Errorf("the log after a restart %v lacks the events sent while the disk was full %v", all, queued)
	}
	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if rc := p2.wait(t); rc != 0 {
		t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", rc, p2.stderr.String())
	}
}

// fill writes path until the file system is full, down to its last bytes.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for _, n := range []int{1 << 20, 64 << 10, 4 << 10, 512, 1} {
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
}

// sendDurable posts one event and returns the job's seq after it and
// whether the server says it is durable (body and header agree).
func sendDurable(t *testing.T, base, key, jobID string, ev protocol.ProducerEvent) (int64, bool) {
	t.Helper()
	body, _ := json.Marshal(ev)
	req, _ := http.NewRequest("POST", base+"/v1/jobs/"+jobID+"/events", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		Seq     int64 `json:"seq"`
		Durable *bool `json:"durable"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || resp.StatusCode != http.StatusAccepted || out.Durable == nil {
		t.Fatalf("event answered %d %s, want 202 with durable", resp.StatusCode, raw)
	}
	if h := resp.Header.Get("X-Jobcast-Durable"); h != fmt.Sprint(*out.Durable) {
		t.Fatalf("X-Jobcast-Durable %q but body durable %v", h, *out.Durable)
	}
	return out.Seq, *out.Durable
}

// diskFullMetric reads one unlabelled sample from /metrics.
func diskFullMetric(t *testing.T, base, admin, name string) float64 {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// resumeLog connects as a client resuming after lastSeq and returns the
// seqs of the non-progress messages it is replayed, reading until seq
// until (0: until the job's terminal message).
func resumeLog(t *testing.T, tk *client.Ticket, lastSeq, until int64) []int64 {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(tk.WebsocketURL+"&token="+tk.Token+"&lastSeq="+fmt.Sprint(lastSeq), nil)
	if err != nil {
		t.Fatalf("resume after %d: %v", lastSeq, err)
	}
	resp.Body.Close()
	defer c.Close()
	var out []int64
	for {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, data, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("resume after %d: read after %v: %v", lastSeq, out, err)
		}
		var env protocol.Envelope
		if err := json.Unmarshal(data, &env); err != nil {
			t.Fatal(err)
		}
		switch env.Type {
		case protocol.TypeReady, protocol.TypePing, protocol.TypeJobProgress:
			continue
		}
		out = append(out, env.Seq)
		if (until > 0 && env.Seq >= until) || env.Type == protocol.TypeJobCompleted || env.Type == protocol.TypeJobFailed {
			return out
		}
	}
}
