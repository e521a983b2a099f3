package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/clickhouse"
	"github.com/jobcast/jobcast/clickhouse/chtest"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/nats/natstest"
	"github.com/jobcast/jobcast/protocol"
)

const (
	clusterAPIKey = "cluster-test-key-0123456789"
	clusterJWT    = "cluster-test-jwt-secret-0123456789-0123456789"
)

// startClusterNode starts a full node (startNode, as serve does) on the
// cluster engines, with the secrets every node of the cluster shares.
func startClusterNode(t *testing.T, id string, urls engineURLs) (*node, func()) {
	t.Helper()
	cfg := jobcast.Config{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(), NodeID: id,
		APIKeys: []string{clusterAPIKey}, JWTSecret: clusterJWT, AdminToken: "cluster-admin-token-0123456789",
		ThrottleDisabled: true, NATSURL: urls.NATS, ClickHouseURL: urls.ClickHouse,
	}.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := startNode(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
	if err != nil {
		t.Fatalf("start node %s: %v", id, err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := n.shutdown(ctx); err != nil {
				t.Errorf("shut down node %s: %v", id, err)
			}
		})
	}
	t.Cleanup(stop)
	return n, stop
}

// TestClusterTwoNodes runs two full nodes on one NATS server (and, when a
// ClickHouse server is given, one ClickHouse database): a client on node A
// watches, live, a job created and driven through node B; a client that
// joins on A after the job finished gets B's logged messages replayed; a
// client that leaves A mid-job resumes on B with nothing lost; both nodes'
// telemetry lands in the one ClickHouse table.
func TestClusterTwoNodes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	urls := engineURLs{NATS: natstest.NewServer(t)}
	if os.Getenv(chtest.EnvURL) != "" || os.Getenv(chtest.EnvRequire) != "" {
		urls.ClickHouse = chtest.URL(t)
	}
	a, stopA := startClusterNode(t, "node-a", urls)
	b, stopB := startClusterNode(t, "node-b", urls)
	wsA := "ws" + strings.TrimPrefix(a.URL(), "http") + "/ws/progress"
	producerB := client.NewProducer(b.URL(), clusterAPIKey)

	tk, err := producerB.CreateJob(ctx, client.CreateJobRequest{Pipeline: "csv_import", TotalCount: 20})
	if err != nil {
		t.Fatalf("CreateJob on B: %v", err)
	}
	var (
		mu    sync.Mutex
		live  []int64
		ready = make(chan struct{})
		once  sync.Once
	)
	w, err := client.NewWatcher(client.Config{
		URL: wsA, JobID: tk.JobID, Token: tk.Token, MaxAttempts: 3,
		Context:   client.ClientContext{AppVersion: "2.0", OSVersion: "iOS 18", NetworkType: "wifi", DeviceModel: "iPhone15,2"},
		OnReady:   func(protocol.Ready) { once.Do(func() { close(ready) }) },
		OnMessage: func(e protocol.Envelope) { mu.Lock(); live = append(live, e.Seq); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatal("no ready frame from node A")
	}
	evs := []protocol.ProducerEvent{client.NewEvent("started", map[string]any{"totalCount": 20})}
	for i := 1; i <= 20; i++ {
		evs = append(evs, client.NewEvent("progress", map[string]any{"processedCount": i}))
		if i == 10 {
			evs = append(evs, client.NewEvent("error", map[string]any{"code": "E_GEMINI_TIMEOUT", "retryable": true}))
		}
	}
	evs = append(evs, client.NewEvent("completed", map[string]any{"successCount": 20}))
	for _, ev := range evs {
		if _, err := producerB.SendEvent(ctx, tk.JobID, ev); err != nil {
			t.Fatalf("SendEvent on B: %v", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("watcher on A: %v", err)
	}
	mu.Lock()
	if len(live) != len(evs) || live[0] != 1 || live[len(live)-1] != int64(len(evs)) {
		t.Fatalf("client on A saw seqs %v, want 1…%d", live, len(evs))
	}
	mu.Unlock()

	// A client joining on A after the end gets the log B wrote.
	var types []string
	late, err := client.NewWatcher(client.Config{
		URL: wsA, JobID: tk.JobID, Token: tk.Token, MaxAttempts: 3,
		OnMessage: func(e protocol.Envelope) { types = append(types, e.Type) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := late.Run(ctx); err != nil {
		t.Fatalf("late watcher on A: %v", err)
	}
	if got, want := strings.Join(types, " "), "job_started error job_progress job_completed"; got != want {
		t.Fatalf("late client on A replayed %q, want %q", got, want)
	}

	testMoveToAnotherNode(ctx, t, a, b)

	if urls.ClickHouse == "" {
		return // no ClickHouse server given: both nodes used DuckDB
	}
	// Stopping the nodes flushes their telemetry into the shared table.
	stopA()
	stopB()
	store, err := clickhouse.Open(ctx, clickhouse.Config{URL: urls.ClickHouse})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rows, err := store.Query(ctx, "SELECT node, event, count() AS n FROM events GROUP BY node, event ORDER BY node, event")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range rows.Rows {
		got[r[0].(string)+"/"+r[1].(string)] = true
	}
	for _, want := range []string{"node-a/connected", "node-a/disconnected", "node-b/job_started", "node-b/job_completed", "node-b/error"} {
		if !got[want] {
			t.Errorf("no %s event in ClickHouse; have %v", want, rows.Rows)
		}
	}
}

// testMoveToAnotherNode: a client watching on A leaves mid-job; the job goes
// on through A; the client reconnects to B with the last seq it saw and gets
// every logged message after it, the latest progress and the end, each once,
// in order.
func testMoveToAnotherNode(ctx context.Context, t *testing.T, a, b *node) {
	t.Helper()
	producerA := client.NewProducer(a.URL(), clusterAPIKey)
	tk, err := producerA.CreateJob(ctx, client.CreateJobRequest{Pipeline: "ai_scan", TotalCount: 10})
	if err != nil {
		t.Fatalf("CreateJob on A: %v", err)
	}
	send := func(evs ...protocol.ProducerEvent) {
		t.Helper()
		for _, ev := range evs {
			if _, err := producerA.SendEvent(ctx, tk.JobID, ev); err != nil {
				t.Fatalf("SendEvent on A: %v", err)
			}
		}
	}
	// The first part, watched on A until seq 3.
	wctx, leave := context.WithCancel(ctx)
	defer leave()
	seen := make(chan struct{})
	var once sync.Once
	w, err := client.NewWatcher(client.Config{
		URL: "ws" + strings.TrimPrefix(a.URL(), "http") + "/ws/progress", JobID: tk.JobID, Token: tk.Token,
		OnMessage: func(e protocol.Envelope) {
			if e.Seq >= 3 {
				once.Do(func() { close(seen) })
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	send(client.NewEvent("started", nil), client.NewEvent("progress", map[string]any{"processedCount": 1}),
		client.NewEvent("progress", map[string]any{"processedCount": 2}))
	select {
	case <-seen:
	case <-ctx.Done():
		t.Fatal("the client on A did not see seq 3")
	}
	leave()
	<-done
	last := w.LastSeq()
	// Meanwhile, through A: seq 4-8.
	send(client.NewEvent("progress", map[string]any{"processedCount": 3}),
		client.NewEvent("error", map[string]any{"code": "E_GEMINI_TIMEOUT", "retryable": true}),
		client.NewEvent("progress", map[string]any{"processedCount": 9}),
		client.NewEvent("error", map[string]any{"code": "E_RATE_LIMITED"}),
		client.NewEvent("progress", map[string]any{"processedCount": 10}))

	// Resume on B, as the SDK does after a reconnect.
	h := http.Header{"Authorization": {"Bearer " + tk.Token}, "X-Last-Seq": {strconv.FormatInt(last, 10)}}
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(b.URL(), "http")+"/ws/progress?jobId="+tk.JobID, h)
	if err != nil {
		t.Fatalf("resume on B: %v (%v)", err, resp)
	}
	defer ws.Close()
	var got []string
	readUntil := func(typ string) {
		t.Helper()
		for {
			_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			var env protocol.Envelope
			if err := ws.ReadJSON(&env); err != nil {
				t.Fatalf("read on B after %v: %v", got, err)
			}
			if env.Type == protocol.TypeReady || protocol.IsJobMessage(env.Type) {
				got = append(got, fmt.Sprintf("%s:%d", env.Type, env.Seq))
			}
			if env.Type == typ {
				return
			}
		}
	}
	readUntil(protocol.TypeJobProgress) // the replay ends with the latest progress
	send(client.NewEvent("completed", map[string]any{"successCount": 10}))
	readUntil(protocol.TypeJobCompleted)
	want := "ready:0 error:5 error:7 job_progress:8 job_completed:9"
	if last != 3 || strings.Join(got, " ") != want {
		t.Fatalf("resumed on B after seq %d: %v, want after seq 3: %s", last, got, want)
	}
}

// TestServeClusterFlags runs two `jobcast serve` (Main) on one NATS server,
// one configured by flag and one by environment: a job created through one
// is served by the other, and the other's client sees its progress live.
func TestServeClusterFlags(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	natsURL := natstest.NewServer(t)
	env := func(extra map[string]string) map[string]string {
		m := map[string]string{"JOBCAST_API_KEYS": clusterAPIKey, "JOBCAST_JWT_SECRET": clusterJWT, "JOBCAST_DATA_DIR": t.TempDir()}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	outA, _, _ := runMain(t, []string{"serve", "-addr", "127.0.0.1:0", "-nats", natsURL}, env(nil))
	outB, _, _ := runMain(t, []string{"serve", "-addr", "127.0.0.1:0"}, env(map[string]string{"JOBCAST_NATS_URL": natsURL}))
	baseA, baseB := outA.waitFor(t, servingRE)[1], outB.waitFor(t, servingRE)[1]

	producerB := client.NewProducer(baseB, clusterAPIKey)
	tk, err := producerB.CreateJob(ctx, client.CreateJobRequest{Pipeline: "csv_import", TotalCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	w, err := client.NewWatcher(client.Config{
		URL: "ws" + strings.TrimPrefix(baseA, "http") + "/ws/progress", JobID: tk.JobID, Token: tk.Token, MaxAttempts: 3,
		OnMessage: func(e protocol.Envelope) { types = append(types, e.Type) },
		OnReady: func(protocol.Ready) {
			go func() {
				_, _ = producerB.SendEvents(ctx, tk.JobID, []protocol.ProducerEvent{
					client.NewEvent("started", nil), client.NewEvent("completed", map[string]any{"successCount": 2}),
				})
			}()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(ctx); err != nil {
		t.Fatalf("watch on A: %v", err)
	}
	if got := strings.Join(types, " "); got != "job_started job_completed" {
		t.Fatalf("client on A saw %q, want job_started job_completed", got)
	}
	st, err := client.NewProducer(baseA, clusterAPIKey).GetJob(ctx, tk.JobID)
	if err != nil || st.Status != protocol.StatusCompleted {
		t.Fatalf("GetJob on A = %+v, %v", st, err)
	}
}
