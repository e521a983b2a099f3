package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jobcast/jobcast/alerting"
	"github.com/jobcast/jobcast/clickhouse/chtest"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/dashboard"
	"github.com/jobcast/jobcast/internal/natsdev"
	"github.com/jobcast/jobcast/nats/natstest"
	"github.com/jobcast/jobcast/protocol"
)

const clusterAdminToken = "cluster-e2e-admin-token-0123456789"

// e2eNode is one `jobcast serve` process of the end-to-end cluster.
type e2eNode struct {
	id   string
	proc *proc
	base string // http://127.0.0.1:PORT
	addr string // 127.0.0.1:PORT
	prod *client.Producer
}

// startE2ECluster starts n `jobcast serve` processes (this test binary
// re-run, as the fault tests do) on one NATS server and one ClickHouse
// database, sharing the JWT secret, API keys and admin token, every one
// with the same Slack webhook and a 1 s alert evaluation interval.
func startE2ECluster(t *testing.T, n int, natsURL, chURL, slackURL string) []*e2eNode {
	t.Helper()
	nodes := make([]*e2eNode, n)
	for i := range nodes {
		id := fmt.Sprintf("node-%c", 'a'+i)
		nodes[i] = &e2eNode{id: id, proc: startProc(t, []string{"serve", "-addr", "127.0.0.1:0"}, map[string]string{
			"JOBCAST_NODE_ID":             id,
			"JOBCAST_DATA_DIR":            t.TempDir(),
			"JOBCAST_NATS_URL":            natsURL,
			"JOBCAST_CLICKHOUSE_URL":      chURL,
			"JOBCAST_API_KEYS":            clusterAPIKey,
			"JOBCAST_JWT_SECRET":          clusterJWT,
			"JOBCAST_ADMIN_TOKEN":         clusterAdminToken,
			"JOBCAST_SLACK_WEBHOOK_URL":   slackURL,
			"JOBCAST_ALERT_EVAL_INTERVAL": "1s",
		})}
	}
	// The three start at once; wait for each to serve.
	deadline := time.Now().Add(60 * time.Second)
	for _, nd := range nodes {
		for nd.base == "" {
			if m := servingRE.FindStringSubmatch(nd.proc.stdout.String()); m != nil {
				nd.base = m[1]
				break
			}
			select {
			case <-nd.proc.done:
				t.Fatalf("%s exited with %d before serving; stderr:\n%s", nd.id, nd.proc.rc, nd.proc.stderr.String())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never served; stderr:\n%s", nd.id, nd.proc.stderr.String())
			}
		}
		nd.addr = strings.TrimPrefix(nd.base, "http://")
		nd.prod = client.NewProducer(nd.base, clusterAPIKey)
	}
	return nodes
}

// route plays the load balancer in front of the cluster for one client:
// the SDK dials one URL, and route connects it to the first node of its
// list that accepts, as a balancer skips a dead backend. Moving the
// client is changing the list and dropping its connection.
type route struct {
	mu    sync.Mutex
	order []string // node addresses, first choice first; empty: every dial fails
	dials []string // the node each successful dial reached
}

func (r *route) set(addrs ...string) {
	r.mu.Lock()
	r.order = addrs
	r.mu.Unlock()
}

func (r *route) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.dials) == 0 {
		return ""
	}
	return r.dials[len(r.dials)-1]
}

func (r *route) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	r.mu.Lock()
	order := slices.Clone(r.order)
	r.mu.Unlock()
	var d net.Dialer
	err := errors.New("route: no node")
	for _, a := range order {
		var c net.Conn
		if c, err = d.DialContext(ctx, network, a); err == nil {
			r.mu.Lock()
			r.dials = append(r.dials, a)
			r.mu.Unlock()
			return c, nil
		}
	}
	return nil, err
}

// e2eWatcher is an SDK watcher behind a route, with what it saw.
type e2eWatcher struct {
	*watched
	route *route
	tk    *client.Ticket
}

// watchVia starts an SDK watcher of tk's job whose connections go where
// rt says.
func watchVia(t *testing.T, tk *client.Ticket, rt *route) *e2eWatcher {
	t.Helper()
	x := &e2eWatcher{watched: &watched{done: make(chan error, 1)}, route: rt, tk: tk}
	w, err := client.NewWatcher(client.Config{
		URL: "ws://jobcast.cluster.test/ws/progress", JobID: tk.JobID, Token: tk.Token,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Dialer:  &websocket.Dialer{HandshakeTimeout: 5 * time.Second, NetDialContext: rt.dial},
		Context: client.ClientContext{AppVersion: "3.1.0", OSVersion: "Android 15", NetworkType: "cellular", DeviceModel: "Pixel 9"},
		OnMessage: func(e protocol.Envelope) {
			x.mu.Lock()
			x.seqs = append(x.seqs, e.Seq)
			x.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	x.w = w
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	go func() { x.done <- w.Run(ctx) }()
	return x
}

// end waits for the watcher to see its job end, then checks it ended with
// the server's final state (read through via) and saw every message of the
// job's log (replayed by a fresh client on replay).
func (x *e2eWatcher) end(t *testing.T, via, replay *e2eNode) {
	t.Helper()
	select {
	case err := <-x.done:
		if err != nil {
			t.Fatalf("watcher of %s: %v", x.tk.JobID, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("watcher of %s never saw the end (last seq %d)", x.tk.JobID, x.w.LastSeq())
	}
	st, err := via.prod.GetJob(context.Background(), x.tk.JobID)
	if err != nil {
		t.Fatal(err)
	}
	got := x.w.State()
	if got.Seq != st.Seq || got.Status != st.Status || got.ProcessedCount != st.ProcessedCount || got.FailureCount != st.FailureCount {
		t.Errorf("job %s: watcher ended with seq %d %s processed %d, server (%s) has seq %d %s processed %d",
			x.tk.JobID, got.Seq, got.Status, got.ProcessedCount, via.id, st.Seq, st.Status, st.ProcessedCount)
	}
	var log []int64
	rw, err := client.NewWatcher(client.Config{URL: "ws" + strings.TrimPrefix(replay.base, "http") + "/ws/progress", JobID: x.tk.JobID, Token: x.tk.Token,
		OnMessage: func(e protocol.Envelope) {
			if e.Type != protocol.TypeJobProgress {
				log = append(log, e.Seq)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := rw.Run(ctx); err != nil {
		t.Fatalf("replay of %s on %s: %v", x.tk.JobID, replay.id, err)
	}
	seen := map[int64]bool{}
	for _, s := range x.messageSeqs() {
		seen[s] = true
	}
	for _, s := range log {
		if !seen[s] {
			t.Errorf("job %s: the watcher missed message seq %d of the log %v (saw %v)", x.tk.JobID, s, log, x.messageSeqs())
		}
	}
	if len(log) == 0 || log[len(log)-1] != st.Seq {
		t.Errorf("job %s: the log replayed on %s is %v, want it to end with the terminal seq %d", x.tk.JobID, replay.id, log, st.Seq)
	}
}

// fakeSlack is a Slack incoming webhook: it takes POSTed JSON with text
// and blocks and answers 200 "ok", as hooks.slack.com does.
type fakeSlack struct {
	srv  *httptest.Server
	mu   sync.Mutex
	msgs []slackMessage
	bad  []string
}

type slackMessage struct {
	Text   string           `json:"text"`
	Blocks []map[string]any `json:"blocks"`
}

func newFakeSlack(t *testing.T) *fakeSlack {
	t.Helper()
	f := &fakeSlack{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m slackMessage
		f.mu.Lock()
		defer f.mu.Unlock()
		if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") ||
			json.Unmarshal(body, &m) != nil || m.Text == "" || len(m.Blocks) == 0 {
			f.bad = append(f.bad, fmt.Sprintf("%s %s %q", r.Method, r.Header.Get("Content-Type"), body))
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		f.msgs = append(f.msgs, m)
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// firing counts the messages that announce rule firing.
func (f *fakeSlack) firing(rule string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.msgs {
		if strings.HasPrefix(m.Text, "[FIRING:") && strings.Contains(strings.SplitN(m.Text, "\n", 2)[0], rule) {
			n++
		}
	}
	return n
}

func (f *fakeSlack) invalid() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.bad)
}

// adminJSON sends an admin API request to base and decodes the JSON answer
// into out (when not nil); it fails the test on a status other than want.
func adminJSON(t *testing.T, method, base, path string, body any, want int, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+clusterAdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, base, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s%s: %d %s, want %d", method, base, path, resp.StatusCode, data, want)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s%s: %v in %s", method, base, path, err, data)
		}
	}
}

// readyOn opens tk's job on node nd, returns its ready frame and closes.
func readyOn(t *testing.T, nd *e2eNode, tk *client.Ticket) protocol.Ready {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{"Authorization": {"Bearer " + tk.Token}, "X-Network-Type": {"wifi"}}
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(nd.base, "http")+"/ws/progress?jobId="+url.QueryEscape(tk.JobID), h)
	if err != nil {
		t.Fatalf("connect to %s: %v (%v)", nd.id, err, resp)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var env protocol.Envelope
	if err := ws.ReadJSON(&env); err != nil || env.Type != protocol.TypeReady {
		t.Fatalf("first frame on %s: %+v, %v", nd.id, env, err)
	}
	var r protocol.Ready
	if err := json.Unmarshal(env.Payload, &r); err != nil {
		t.Fatal(err)
	}
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	return r
}

// send posts events to a job through nd.
func send(t *testing.T, nd *e2eNode, jobID string, evs ...protocol.ProducerEvent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := nd.prod.SendEvents(ctx, jobID, evs); err != nil {
		t.Fatalf("send to %s through %s: %v", jobID, nd.id, err)
	}
}

func progress(n int) protocol.ProducerEvent {
	return client.NewEvent("progress", map[string]any{"processedCount": n, "totalCount": 100})
}

func createJob(t *testing.T, nd *e2eNode, pipeline string) *client.Ticket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tk, err := nd.prod.CreateJob(ctx, client.CreateJobRequest{Pipeline: pipeline, TotalCount: 100})
	if err != nil {
		t.Fatalf("create a %s job through %s: %v", pipeline, nd.id, err)
	}
	return tk
}

// TestClusterEndToEnd runs three `jobcast serve` processes on one NATS
// server and one ClickHouse database (DuckDB per node when no server is
// given; the dashboard check then skips), behind a load balancer the test
// plays, and checks what cluster mode promises: an error burst spread over
// the nodes pages Slack exactly once; progress produced through one node
// reaches a client on another; a client moved to a third node mid-job
// resumes with nothing lost; an experiment created through one node
// applies on the others; the dashboard's numbers are the cluster's and
// the same on every node; and when a node is killed (SIGKILL) its clients
// resume on another with nothing lost and the server's final state.
func TestClusterEndToEnd(t *testing.T) {
	t.Parallel()
	// ClickHouse is required in CI; without a server every node keeps its
	// own DuckDB, and only the dashboard check, which needs the shared
	// store, skips.
	chURL := ""
	if os.Getenv(chtest.EnvURL) != "" || os.Getenv(chtest.EnvRequire) != "" {
		chURL = chtest.URL(t)
	}
	natsURL := natstest.NewServer(t)
	slack := newFakeSlack(t)
	nodes := startE2ECluster(t, 3, natsURL, chURL, slack.srv.URL)
	a, b, c := nodes[0], nodes[1], nodes[2]
	t.Cleanup(func() {
		if t.Failed() {
			for _, nd := range nodes {
				t.Logf("%s stderr:\n%s", nd.id, nd.proc.stderr.String())
			}
		}
	})

	// Every client connection the test makes, for the dashboard check.
	var connects int

	t.Run("error burst over the nodes fires the alert exactly once", func(t *testing.T) {
		// Two jobs per node, each with a producer error: every session
		// seen so far has an error, far above the 5% threshold.
		for _, nd := range nodes {
			for range 2 {
				tk := createJob(t, nd, "e2e_burst")
				send(t, nd, tk.JobID, client.NewEvent("started", nil), progress(1),
					client.NewEvent("error", map[string]any{"code": "E_GEMINI_TIMEOUT", "retryable": true, "details": map[string]any{"provider": "gemini"}}))
			}
		}
		poll(t, "the error-rate alert at the Slack webhook", 30*time.Second, func() bool { return slack.firing(alerting.RuleErrorRate) > 0 })
		fired := time.Now()
		// Every node shows it firing (followers read the leader's state).
		for _, nd := range nodes {
			poll(t, nd.id+" to list the alert firing", 15*time.Second, func() bool {
				var out struct{ Alerts []alerting.AlertStatus }
				adminJSON(t, "GET", nd.base, "/v1/alerts", nil, 200, &out)
				return slices.ContainsFunc(out.Alerts, func(s alerting.AlertStatus) bool {
					return s.Rule == alerting.RuleErrorRate && s.State == "firing"
				})
			})
		}
		// Two more evaluations by whichever node leads, then count.
		poll(t, "two more evaluations of the rule", 15*time.Second, func() bool {
			var latest time.Time
			for _, nd := range nodes {
				var v alerting.RulesView
				adminJSON(t, "GET", nd.base, "/v1/alerts/rules", nil, 200, &v)
				for _, r := range v.Rules {
					if r.Name == alerting.RuleErrorRate && r.Health.LastEvaluation.After(latest) {
						latest = r.Health.LastEvaluation
					}
				}
			}
			return latest.After(fired.Add(2 * time.Second))
		})
		if n := slack.firing(alerting.RuleErrorRate); n != 1 {
			t.Fatalf("Slack got %d firing messages for %s, want exactly 1", n, alerting.RuleErrorRate)
		}
		if bad := slack.invalid(); len(bad) > 0 {
			t.Fatalf("Slack got requests that are not webhook messages: %v", bad)
		}
	})

	// The job of (a) and (b): produced through B, watched on A, then C.
	tk := createJob(t, b, "e2e_move")
	rt := &route{}
	rt.set(a.addr)
	x := watchVia(t, tk, rt)

	t.Run("a client on A sees progress produced through B", func(t *testing.T) {
		poll(t, "the client's ready on A", 20*time.Second, func() bool { return x.w.Stats().Connects == 1 })
		send(t, b, tk.JobID, client.NewEvent("started", map[string]any{"totalCount": 100}))
		for i := 1; i <= 5; i++ {
			send(t, b, tk.JobID, progress(i))
		}
		poll(t, "progress 5 on the client on A", 20*time.Second, func() bool { return x.w.State().ProcessedCount == 5 })
		if got := rt.last(); got != a.addr {
			t.Fatalf("the client is connected to %s, want A (%s)", got, a.addr)
		}
	})

	t.Run("the client moves to C mid-job and resumes with nothing lost", func(t *testing.T) {
		before := x.w.LastSeq()
		rt.set() // no node for a while: the client retries
		x.w.Drop()
		poll(t, "the client to notice", 10*time.Second, func() bool { return x.w.Stats().Failures > 0 })
		// While it is away: an error, progress, another error, through B.
		send(t, b, tk.JobID, client.NewEvent("error", map[string]any{"code": "E_ENRICHMENT_FAILED", "retryable": true}), progress(6),
			progress(7), client.NewEvent("error", map[string]any{"code": "E_GEMINI_TIMEOUT"}), progress(8))
		rt.set(c.addr)
		poll(t, "the client to resume on C", 20*time.Second, func() bool { return x.w.Stats().Resumes == 1 && x.w.State().ProcessedCount == 8 })
		if got := rt.last(); got != c.addr {
			t.Fatalf("the client resumed on %s, want C (%s)", got, c.addr)
		}
		send(t, b, tk.JobID, progress(9), client.NewEvent("completed", map[string]any{"successCount": 9}))
		x.end(t, a, c)
		connects++ // end's replay client on C
		if seqs := x.messageSeqs(); len(seqs) == 0 || seqs[0] != 1 || before < 6 {
			t.Fatalf("seqs seen %v, last before the move %d", seqs, before)
		}
		connects += x.w.Stats().Connects
	})

	t.Run("an experiment created through A applies on B and C", func(t *testing.T) {
		const control, variant = 21000, 22000
		adminJSON(t, "POST", a.base, "/v1/experiments", map[string]any{
			"id": "e2e-heartbeat", "parameter": "heartbeat_interval_ms", "control": control, "variant": variant,
			"coverage": 1.0, "split": 0.5, "status": "running",
		}, http.StatusCreated, nil)
		for _, nd := range []*e2eNode{b, c} {
			var hb int64
			poll(t, "the experiment's heartbeat in ready on "+nd.id, 15*time.Second, func() bool {
				tk := createJob(t, nd, "e2e_experiment")
				hb = readyOn(t, nd, tk).HeartbeatIntervalMs
				connects++
				if hb != control && hb != variant {
					return false
				}
				// The unit keeps its arm on every node.
				for _, other := range nodes {
					if got := readyOn(t, other, tk).HeartbeatIntervalMs; got != hb {
						t.Fatalf("job %s has heartbeat %d on %s, %d on %s", tk.JobID, hb, nd.id, got, other.id)
					}
					connects++
				}
				return true
			})
		}
	})

	t.Run("the dashboard shows the whole cluster on every node", func(t *testing.T) {
		if chURL == "" {
			t.Skipf("no ClickHouse server (%s): each node's dashboard reads its own DuckDB", chtest.EnvURL)
		}
		// What the nodes agree on, and the jobs the test started (on every
		// node) must all be in it.
		type view struct {
			Overall     dashboard.HealthRow
			Sessions    float64
			ErrorRate   *float64
			TopErrors   []dashboard.ErrorRow
			Pipelines   []dashboard.PipelineRow
			SentMessage float64
		}
		var last []view
		poll(t, "equal dashboards with every node's events", 30*time.Second, func() bool {
			last = last[:0]
			for _, nd := range nodes {
				var ov dashboard.Overview
				adminJSON(t, "GET", nd.base, "/dashboard/api/overview?range=1h", nil, 200, &ov)
				last = append(last, view{ov.Health.Overall, ov.Errors.Sessions, ov.Errors.ErrorRate, ov.Errors.Top, ov.Throughput.Pipelines, ov.Throughput.MessagesSent})
			}
			v := last[0]
			started := map[string]float64{}
			for _, p := range v.Pipelines {
				started[p.Pipeline] = p.Started
			}
			return reflect.DeepEqual(last[0], last[1]) && reflect.DeepEqual(last[0], last[2]) &&
				started["e2e_burst"] == 6 && started["e2e_move"] == 1 && v.Overall.Connections == float64(connects)
		})
		t.Logf("every node: %d connections, %v sessions, error rate %v, pipelines %+v", connects, last[0].Sessions, *last[0].ErrorRate, last[0].Pipelines)
	})

	t.Run("node A dies (SIGKILL) and its clients resume on B with nothing lost", func(t *testing.T) {
		var ws []*e2eWatcher
		for range 3 {
			tk := createJob(t, c, "e2e_kill")
			rt := &route{}
			rt.set(a.addr, b.addr)
			ws = append(ws, watchVia(t, tk, rt))
		}
		for i, x := range ws {
			poll(t, fmt.Sprintf("client %d on A", i), 20*time.Second, func() bool { return x.w.Stats().Connects == 1 })
			send(t, c, x.tk.JobID, client.NewEvent("started", nil), progress(1),
				client.NewEvent("error", map[string]any{"code": "E_GEMINI_TIMEOUT", "retryable": true}), progress(2))
		}
		for i, x := range ws {
			poll(t, fmt.Sprintf("client %d to see seq 4", i), 20*time.Second, func() bool { return x.w.LastSeq() == 4 })
		}
		if err := a.proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if rc := a.proc.wait(t); rc != -1 {
			t.Fatalf("node A exited with %d, want killed by a signal", rc)
		}
		// The jobs go on through C while the clients find B.
		for _, x := range ws {
			send(t, c, x.tk.JobID, progress(3), client.NewEvent("error", map[string]any{"code": "E_ENRICHMENT_FAILED"}), progress(4))
		}
		for i, x := range ws {
			poll(t, fmt.Sprintf("client %d to resume on B", i), 20*time.Second, func() bool { return x.w.Stats().Resumes >= 1 })
			if got := x.route.last(); got != b.addr {
				t.Fatalf("client %d resumed on %s, want B (%s)", i, got, b.addr)
			}
		}
		for _, x := range ws {
			send(t, c, x.tk.JobID, progress(5), client.NewEvent("completed", map[string]any{"successCount": 5}))
		}
		for _, x := range ws {
			x.end(t, b, c)
		}
	})

	// Nothing after the burst (more errors, a dead node) paged again.
	if n := slack.firing(alerting.RuleErrorRate); n != 1 {
		t.Fatalf("Slack got %d firing messages for %s by the end, want exactly 1", n, alerting.RuleErrorRate)
	}
}

// demoChildEnv makes this test binary a program of the cluster demo:
// `jobcast …` (Main) or, with first argument nats-dev, jobcast-nats-dev.
// The demo script runs it through a wrapper, so the test needs no second
// build of the (cgo, DuckDB) binary.
const demoChildEnv = "JOBCAST_DEMO_CHILD"

// TestClusterDemoChild is a program of the cluster demo test, not a test:
// in a normal run it returns at once. Its arguments follow -- on the
// command line.
func TestClusterDemoChild(t *testing.T) {
	if os.Getenv(demoChildEnv) == "" {
		return
	}
	args := flag.Args()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	rc := 0
	if len(args) > 0 && args[0] == "nats-dev" {
		if err := natsdev.Run(ctx, args[1:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "nats-dev:", err)
			rc = 1
		}
	} else {
		rc = Main(ctx, args, os.LookupEnv, os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(rc)
}

// TestClusterDemo runs `make cluster-demo` as a terminal would, with this
// test binary standing in for the binaries: NATS, three nodes and their
// traffic come up, each traffic round checks its phones ended with the
// server's state, and Ctrl-C (SIGINT to the process group) stops
// everything: make exits and no node or NATS port answers any more.
func TestClusterDemo(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is not installed: the cluster-demo target cannot run")
	}
	ch := "clickhouse://127.0.0.1:1/jobcast_demo" // nothing listens: the demo runs without ClickHouse
	if os.Getenv(chtest.EnvURL) != "" {
		ch = chtest.URL(t)
	}
	dir := t.TempDir()
	wrap := func(name, first string) string {
		p := filepath.Join(dir, name)
		script := fmt.Sprintf("#!/bin/sh\n%s=1 exec %q -test.run='^TestClusterDemoChild$' -test.count=1 -- %s \"$@\"\n", demoChildEnv, os.Args[0], first)
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "-s", "-C", root, "cluster-demo", "DURATION=60s")
	cmd.Env = append(os.Environ(),
		"JOBCAST_BIN="+wrap("jobcast", ""), "JOBCAST_NATS_DEV_BIN="+wrap("jobcast-nats-dev", "nats-dev"),
		"JOBCAST_DEMO_PORT=0", "JOBCAST_DEMO_CONNS=10", "JOBCAST_DEMO_ROUND=1s", "JOBCAST_DEMO_CLICKHOUSE_URL="+ch)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // no-op once it stopped
	})
	round := regexp.MustCompile(`traffic to node-\d, round \d+: +latency p50`)
	deadline := time.Now().Add(60 * time.Second)
	for len(round.FindAllString(out.String(), -1)) < 3 {
		select {
		case err := <-done:
			t.Fatalf("make cluster-demo ended (%v) before three traffic rounds:\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no three traffic rounds after 60s:\n%s", out.String())
		}
	}
	text := out.String()
	urls := regexp.MustCompile(`node-\d  (http://127\.0\.0\.1:\d+)/dashboard`).FindAllStringSubmatch(text, -1)
	natsURL := regexp.MustCompile(`nats://(127\.0\.0\.1:\d+)`).FindStringSubmatch(text)
	if len(urls) != 3 || natsURL == nil {
		t.Fatalf("want three dashboards and a NATS URL in the output:\n%s", text)
	}
	if os.Getenv(chtest.EnvURL) != "" && !strings.Contains(text, "every node writes telemetry to") ||
		os.Getenv(chtest.EnvURL) == "" && !strings.Contains(text, "no ClickHouse on 127.0.0.1:1") {
		t.Fatalf("the demo does not say whether it uses ClickHouse:\n%s", text)
	}
	// Ctrl-C.
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("make cluster-demo did not stop within 60s of Ctrl-C:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "cluster-demo: stopped") {
		t.Fatalf("no clean stop:\n%s", out.String())
	}
	addrs := []string{natsURL[1]}
	for _, u := range urls {
		addrs = append(addrs, strings.TrimPrefix(u[1], "http://"))
	}
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the demo stopped", a)
		}
	}
}
