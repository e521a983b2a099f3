package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/clickhouse"
	"github.com/jobcast/jobcast/clickhouse/chtest"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/duckdb"
	"github.com/jobcast/jobcast/internal/jobcasttest"
	"github.com/jobcast/jobcast/nats/natstest"
	"github.com/jobcast/jobcast/netsim"
	"github.com/jobcast/jobcast/promexport"
	"github.com/jobcast/jobcast/protocol"
	"github.com/jobcast/jobcast/telemetry"
)

// Outage tests (issue 9): a dependency goes away while clients watch jobs
// live and producers post, and comes back. Each asserts what a regression
// would break: producers answered fast and clearly, watchers connected and
// complete, nothing acknowledged lost, the failure counted, the recovery
// bounded. docs/security.md section 5 lists what they measured.

// outageHeartbeat is the heartbeat of outage-test nodes: short, so that a
// few seconds of outage span many pings.
const outageHeartbeat = 200 * time.Millisecond

// startOutageNode starts a full node (as serve does) with the cluster's
// shared secrets, short heartbeats and no throttling, logging into logs.
func startOutageNode(t *testing.T, id string, urls engineURLs, logs io.Writer, mod func(*jobcast.Config)) *node {
	t.Helper()
	cfg := jobcast.Config{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(), NodeID: id,
		APIKeys: []string{clusterAPIKey}, JWTSecret: clusterJWT, AdminToken: outageAdmin,
		ThrottleDisabled: true, HeartbeatInterval: outageHeartbeat, PongTimeout: 5 * time.Second,
		NATSURL: urls.NATS, ClickHouseURL: urls.ClickHouse,
	}
	if mod != nil {
		mod(&cfg)
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := startNode(context.Background(), cfg, slog.New(slog.NewTextHandler(logs, nil)), io.Discard)
	if err != nil {
		t.Fatalf("start node %s: %v", id, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := n.shutdown(ctx); err != nil {
			t.Errorf("shut down node %s: %v", id, err)
		}
	})
	return n
}

const outageAdmin = "outage-admin-token-0123456789"

func wsURL(n *node) string { return "ws" + strings.TrimPrefix(n.URL(), "http") + "/ws/progress" }

// endpoint is a server the load talks to: its base URL and producer key.
type endpoint struct {
	name, url, apiKey string
}

func (e endpoint) ws() string { return "ws" + strings.TrimPrefix(e.url, "http") + "/ws/progress" }

// endpoints names nodes as the load's endpoints.
func endpoints(nodes ...*node) []endpoint {
	out := make([]endpoint, len(nodes))
	for i, n := range nodes {
		out[i] = endpoint{name: n.cfg.NodeID, url: n.URL(), apiKey: clusterAPIKey}
	}
	return out
}

// postResult is one producer request's outcome.
type postResult struct {
	at      time.Time
	latency time.Duration
	err     error
}

// loadJob is one job under load: its producer posts progress, and every
// tenth event an error message (logged, so no watcher may miss it).
type loadJob struct {
	id, token string
	prod      *client.Producer

	mu          sync.Mutex
	ackedErrors []int64 // seqs of error events answered 202
	lastCount   int64   // processedCount of the last progress answered 202
	lastOK      time.Time
}

// loadWatcher is one SDK client watching a job on one node.
type loadWatcher struct {
	job  *loadJob
	node string
	w    *client.Watcher
	done chan error

	mu        sync.Mutex
	errorSeqs map[int64]bool
	last      int64 // the last seq received
	gaps      int   // messages whose seq did not follow the last one
}

func (lw *loadWatcher) sawError(seq int64) bool {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.errorSeqs[seq]
}

// load drives producers and watchers until finish.
type load struct {
	t        *testing.T
	ctx      context.Context
	jobs     []*loadJob
	watchers []*loadWatcher
	stop     chan struct{}
	prodWG   sync.WaitGroup
	// coalesced allows a connected watcher to skip progress seqs: after a
	// NATS outage the broker catches up as a resume does, with the logged
	// messages and only the latest progress.
	coalesced bool

	mu      sync.Mutex
	results []postResult
}

// startLoad creates jobs (round robin over producers' nodes), starts
// watchers (round robin over watch nodes) and, once every watcher is
// ready, one producer per job posting every interval.
func startLoad(ctx context.Context, t *testing.T, producers, watchNodes []endpoint, jobs, watchers int, interval time.Duration) *load {
	t.Helper()
	l := &load{t: t, ctx: ctx, stop: make(chan struct{})}
	for i := range jobs {
		ep := producers[i%len(producers)]
		p := client.NewProducer(ep.url, ep.apiKey)
		p.HTTP.Timeout = 30 * time.Second // longer than any bound asserted: a hang shows as latency
		tk, err := p.CreateJob(ctx, client.CreateJobRequest{Pipeline: "outage", TotalCount: 1 << 20})
		if err != nil {
			t.Fatalf("create job: %v", err)
		}
		l.jobs = append(l.jobs, &loadJob{id: tk.JobID, token: tk.Token, prod: p})
	}
	var ready sync.WaitGroup
	for i := range watchers {
		n := watchNodes[i%len(watchNodes)]
		lw := &loadWatcher{job: l.jobs[i%jobs], node: n.name, done: make(chan error, 1), errorSeqs: map[int64]bool{}}
		var once sync.Once
		ready.Add(1)
		w, err := client.NewWatcher(client.Config{
			URL: n.ws(), JobID: lw.job.id, Token: lw.job.token,
			MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
			OnReady: func(protocol.Ready) { once.Do(ready.Done) },
			OnMessage: func(e protocol.Envelope) {
				lw.mu.Lock()
				defer lw.mu.Unlock()
				if e.Seq != lw.last+1 {
					lw.gaps++
				}
				lw.last = e.Seq
				if e.Type == protocol.TypeError {
					lw.errorSeqs[e.Seq] = true
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		lw.w = w
		go func() { lw.done <- w.Run(ctx) }()
		l.watchers = append(l.watchers, lw)
	}
	waited := make(chan struct{})
	go func() { ready.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		t.Fatal("watchers not ready")
	}
	for _, j := range l.jobs {
		l.prodWG.Add(1)
		go l.produce(j, interval)
	}
	return l
}

func (l *load) produce(j *loadJob, interval time.Duration) {
	defer l.prodWG.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var count int64
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		case <-l.ctx.Done():
			return
		case <-tick.C:
		}
		isErr := i%10 == 9
		ev := client.NewEvent("progress", map[string]any{"processedCount": count + 1})
		if isErr {
			ev = client.NewEvent("error", map[string]any{"code": "E_OUTAGE_TEST", "retryable": true})
		}
		start := time.Now()
		res, err := j.prod.SendEvent(l.ctx, j.id, ev)
		l.mu.Lock()
		l.results = append(l.results, postResult{at: start, latency: time.Since(start), err: err})
		l.mu.Unlock()
		if err != nil {
			continue // not acknowledged: the producer may drop it or retry
		}
		j.mu.Lock()
		j.lastOK = time.Now()
		if isErr {
			j.ackedErrors = append(j.ackedErrors, res.Seq)
		} else {
			count++
			j.lastCount = count
		}
		j.mu.Unlock()
	}
}

// since returns the results of requests started at or after t.
func (l *load) since(t time.Time) []postResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []postResult
	for _, r := range l.results {
		if !r.at.Before(t) {
			out = append(out, r)
		}
	}
	return out
}

// between returns the results of requests started in [from, to).
func (l *load) between(from, to time.Time) []postResult {
	var out []postResult
	for _, r := range l.since(from) {
		if r.at.Before(to) {
			out = append(out, r)
		}
	}
	return out
}

// watcherStats snapshots every watcher's counters.
func (l *load) watcherStats() []client.Stats {
	out := make([]client.Stats, len(l.watchers))
	for i, lw := range l.watchers {
		out[i] = lw.w.Stats()
	}
	return out
}

// waitAllOK waits until every job's producer had a 202 after t, and
// returns how long after t the last one came.
func (l *load) waitAllOK(t time.Time, bound time.Duration) time.Duration {
	l.t.Helper()
	deadline := time.Now().Add(bound)
	for {
		var last time.Time
		all := true
		for _, j := range l.jobs {
			j.mu.Lock()
			ok := j.lastOK
			j.mu.Unlock()
			if !ok.After(t) {
				all = false
				break
			}
			if ok.After(last) {
				last = ok
			}
		}
		if all {
			return last.Sub(t)
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("producers not all succeeding %s after recovery", bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// finish stops the producers, completes every job (retrying until 202),
// waits for every watcher to end, and checks each against the server: the
// final state, and every error message a producer got 202 for.
func (l *load) finish(server *client.Producer) {
	l.t.Helper()
	close(l.stop)
	l.prodWG.Wait()
	for _, j := range l.jobs {
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, err := j.prod.SendEvent(l.ctx, j.id, client.NewEvent("completed", map[string]any{"successCount": 1}))
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				l.t.Fatalf("job %s: completed not accepted: %v", j.id, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for i, lw := range l.watchers {
		select {
		case err := <-lw.done:
			if err != nil {
				l.t.Errorf("watcher %d (job %s on %s): %v", i, lw.job.id, lw.node, err)
			}
		case <-time.After(30 * time.Second):
			l.t.Fatalf("watcher %d (job %s on %s) did not end; last seq %d, stats %+v", i, lw.job.id, lw.node, lw.w.LastSeq(), lw.w.Stats())
		}
	}
	for _, j := range l.jobs {
		st, err := server.GetJob(l.ctx, j.id)
		if err != nil {
			l.t.Fatalf("get job %s: %v", j.id, err)
		}
		if st.Status != protocol.StatusCompleted || st.ProcessedCount < j.lastCount {
			l.t.Errorf("job %s: status %s, processedCount %d; last acknowledged %d", j.id, st.Status, st.ProcessedCount, j.lastCount)
		}
		for _, lw := range l.watchers {
			if lw.job != j {
				continue
			}
			got := lw.w.State()
			if got.Seq != st.Seq || got.Status != st.Status || got.ProcessedCount != st.ProcessedCount {
				l.t.Errorf("watcher of %s on %s ended with seq %d %s %d, server has seq %d %s %d",
					j.id, lw.node, got.Seq, got.Status, got.ProcessedCount, st.Seq, st.Status, st.ProcessedCount)
			}
			lw.mu.Lock()
			gaps := lw.gaps
			lw.mu.Unlock()
			if st := lw.w.Stats(); st.Connects == 1 && gaps > 0 && !l.coalesced {
				// Connected throughout, it must have had every message live.
				l.t.Errorf("watcher of %s on %s, connected throughout, skipped seqs %d times", j.id, lw.node, gaps)
			}
			for _, seq := range j.ackedErrors {
				if !lw.sawError(seq) {
					l.t.Errorf("watcher of %s on %s missed the acknowledged error message seq %d", j.id, lw.node, seq)
				}
			}
		}
	}
}

// maxLatency is the slowest of rs.
func maxLatency(rs []postResult) time.Duration {
	var m time.Duration
	for _, r := range rs {
		m = max(m, r.latency)
	}
	return m
}

// metricValue scrapes n's /metrics and returns the sample named name (with
// its labels, as written: `jobcast_telemetry_events_total{outcome="dropped"}`).
func metricValue(t *testing.T, n *node, name string) float64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, n.URL()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+outageAdmin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	return sample(t, resp.Body, name)
}

// sample returns the value of the sample named name in a Prometheus
// exposition (0 when absent).
func sample(t *testing.T, r io.Reader, name string) float64 {
	t.Helper()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	return 0
}

// pollUntil polls cond until it holds or bound passes, and returns how long
// it took.
func pollUntil(t *testing.T, bound time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > bound {
			t.Fatalf("%s: not within %s", what, bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// checkStayedConnected fails when a watcher reconnected between before and
// after, or received no ping in between.
func checkStayedConnected(t *testing.T, l *load, before, after []client.Stats) {
	t.Helper()
	reconnected, noPing := 0, 0
	for i := range before {
		if after[i].Connects != before[i].Connects || after[i].Failures != before[i].Failures {
			reconnected++
		}
		if after[i].Pings <= before[i].Pings {
			noPing++
		}
	}
	if reconnected > 0 || noPing > 0 {
		t.Errorf("during the outage %d of %d watchers reconnected and %d got no ping", reconnected, len(before), noPing)
	}
}

// dialStatus opens a WebSocket to job on n and returns the HTTP status of
// a refused handshake (101 when it was accepted) and how long it took.
func dialStatus(ctx context.Context, n *node, j *loadJob) (int, string, time.Duration) {
	start := time.Now()
	d := websocket.Dialer{HandshakeTimeout: 20 * time.Second}
	ws, resp, err := d.DialContext(ctx, wsURL(n)+"?jobId="+j.id, http.Header{"Authorization": {"Bearer " + j.token}})
	took := time.Since(start)
	if err == nil {
		ws.Close()
		return http.StatusSwitchingProtocols, "", took
	}
	if resp == nil {
		return 0, err.Error(), took
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), took
}

// TestOutageNATS takes the NATS server of a two-node cluster away for
// three seconds while 50 SDK watchers (on both nodes) follow 20 jobs whose
// producers (on both nodes) post about 200 events/s, and brings it back on
// the same port and store.
func TestOutageNATS(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv := natstest.Start(t)
	urls := engineURLs{NATS: srv.URL}
	logs := &syncBuffer{}
	a := startOutageNode(t, "node-a", urls, logs, nil)
	b := startOutageNode(t, "node-b", urls, logs, nil)
	nodes := []*node{a, b}
	leaders := func() int {
		n := 0
		for _, nd := range nodes {
			if nd.alertLease.IsLeader() {
				n++
			}
		}
		return n
	}
	pollUntil(t, 20*time.Second, "one alert leader before the outage", func() bool { return leaders() == 1 })

	eps := endpoints(a, b)
	l := startLoad(ctx, t, eps, eps, 20, 50, 100*time.Millisecond)
	l.coalesced = true
	// A job no watcher on A follows: a new connection to it on A needs a
	// new subscription.
	extra := client.NewProducer(b.URL(), clusterAPIKey)
	lone, err := extra.CreateJob(ctx, client.CreateJobRequest{Pipeline: "outage"})
	if err != nil {
		t.Fatal(err)
	}
	loneJob := &loadJob{id: lone.JobID, token: lone.Token}
	pollUntil(t, 10*time.Second, "every producer acknowledged", func() bool {
		for _, j := range l.jobs {
			j.mu.Lock()
			ok := !j.lastOK.IsZero()
			j.mu.Unlock()
			if !ok {
				return false
			}
		}
		return true
	})

	time.Sleep(1500 * time.Millisecond) // load before the outage

	// The outage: NATS stops; during it, two leaders never coexist.
	var twoLeaders atomic.Bool
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			if leaders() > 1 {
				twoLeaders.Store(true)
			}
			select {
			case <-stopWatch:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	before := l.watcherStats()
	down := time.Now()
	srv.Stop()
	// New connections while NATS is down: to a job watched on the node
	// (its subscription exists) and to one that is not.
	type dial struct {
		what   string
		status int
		body   string
		took   time.Duration
	}
	dialString := func(ds []dial) string {
		var parts []string
		for _, d := range ds {
			parts = append(parts, fmt.Sprintf("%s: %d %s in %s", d.what, d.status, strings.TrimSpace(d.body), d.took.Round(time.Millisecond)))
		}
		return strings.Join(parts, "; ")
	}
	// Probes and reads: alive (no restart of a node holding connections),
	// not ready, and the job read refused, each at once.
	for _, c := range []struct {
		path string
		auth string
		want int
	}{
		{"/healthz", "", http.StatusOK},
		{"/readyz", "", http.StatusServiceUnavailable},
		{"/v1/jobs/" + l.jobs[0].id, clusterAPIKey, http.StatusServiceUnavailable},
	} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.URL()+c.path, nil)
		if c.auth != "" {
			req.Header.Set("Authorization", "Bearer "+c.auth)
		}
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", c.path, err)
		}
		resp.Body.Close()
		if took := time.Since(start); resp.StatusCode != c.want || took > 2*time.Second {
			t.Errorf("GET %s during the outage: %d after %s, want %d within 2s", c.path, resp.StatusCode, took, c.want)
		}
	}
	var dials []dial
	for _, c := range []struct {
		what string
		j    *loadJob
	}{{"watched job", l.jobs[0]}, {"unwatched job", loneJob}} {
		st, body, took := dialStatus(ctx, a, c.j)
		dials = append(dials, dial{c.what, st, body, took})
	}
	outage := 3 * time.Second
	time.Sleep(time.Until(down.Add(outage)))
	during := l.between(down, time.Now())
	mid := l.watcherStats()
	up := time.Now()
	srv.Restart()

	// Producers: every answer during the outage fast; the failures 503
	// E_UNAVAILABLE with Retry-After.
	var failed, ok int
	for _, r := range during {
		if r.err == nil {
			ok++
			continue
		}
		failed++
		var ae *client.APIError
		if !errors.As(r.err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != protocol.ErrUnavailable || ae.RetryAfter <= 0 {
			t.Errorf("producer during the outage: %v, want 503 %s with Retry-After", r.err, protocol.ErrUnavailable)
			break
		}
	}
	if failed == 0 {
		t.Errorf("no producer request failed during the outage (%d requests)", len(during))
	}
	worst := maxLatency(during)
	if worst > 2*time.Second {
		t.Errorf("slowest producer answer during the outage took %s, want < 2s", worst)
	}
	for _, d := range dials {
		if d.status != http.StatusServiceUnavailable || !strings.Contains(d.body, protocol.ErrUnavailable) || d.took > 2*time.Second {
			t.Errorf("new connection to a %s during the outage: %d %q after %s, want 503 %s within 2s", d.what, d.status, d.body, d.took, protocol.ErrUnavailable)
		}
	}
	checkStayedConnected(t, l, before, mid)

	// Recovery: every producer succeeds again, and one node leads alerts.
	recovered := l.waitAllOK(up, 20*time.Second)
	leaderBack := pollUntil(t, 20*time.Second, "one alert leader after the outage", func() bool { return leaders() == 1 })
	close(stopWatch)
	<-watchDone
	if twoLeaders.Load() {
		t.Error("two nodes led alerting at once")
	}
	if st, _, _ := dialStatus(ctx, a, loneJob); st != http.StatusSwitchingProtocols {
		t.Errorf("new connection after the outage: %d", st)
	}
	time.Sleep(1500 * time.Millisecond) // load after the recovery
	l.finish(extra)
	after := l.watcherStats()
	if !strings.Contains(logs.String(), "request failed: unavailable") {
		t.Error("the producers' 503s are not in the log")
	}
	errMsgs := 0
	for _, j := range l.jobs {
		errMsgs += len(j.ackedErrors)
	}
	reconnects, skipped := 0, 0
	for i := range after {
		reconnects += after[i].Connects - before[i].Connects
		l.watchers[i].mu.Lock()
		if l.watchers[i].gaps > 0 {
			skipped++
		}
		l.watchers[i].mu.Unlock()
	}
	t.Logf("NATS outage %s: %d producer requests during it, %d failed (503), %d ok, slowest %s; new connections (%s); watchers reconnected during it: 0 of %d; producers all back %s after restart; alert leader back after %s; %d acknowledged error messages all delivered to every watcher; %d watchers had progress coalesced by the catch-up; connects after the outage %d",
		outage, len(during), failed, ok, worst.Round(time.Millisecond), dialString(dials), len(l.watchers), recovered.Round(time.Millisecond), leaderBack.Round(time.Millisecond), errMsgs, skipped, reconnects)
}

// telemetryCounts are a node's telemetry counters on /metrics.
type telemetryCounts struct {
	recorded, written, dropped, lost, writeErrors float64
}

func scrapeTelemetry(t *testing.T, n *node) telemetryCounts {
	t.Helper()
	return telemetryFrom(func(name string) float64 { return metricValue(t, n, name) })
}

// telemetryFrom reads the telemetry counters through metric.
func telemetryFrom(metric func(name string) float64) telemetryCounts {
	ev := func(outcome string) float64 {
		return metric(`jobcast_telemetry_events_total{outcome="` + outcome + `"}`)
	}
	return telemetryCounts{
		recorded: ev("recorded"), written: ev("written"), dropped: ev("dropped"), lost: ev("lost"),
		writeErrors: metric("jobcast_telemetry_write_errors_total"),
	}
}

// checkHeldNotLost asserts that a store outage of a few seconds lost no
// batch: the recorder holds a failed batch and retries it (for a minute)
// while the ring fills, and only what finds the ring full is dropped.
func checkHeldNotLost(t *testing.T, c telemetryCounts) {
	t.Helper()
	if c.lost != 0 || c.dropped == 0 {
		t.Errorf("telemetry: %v events lost in failed batches and %v dropped; want 0 lost (failed batches held and retried) and drops once the ring is full", c.lost, c.dropped)
	}
}

// unaffectedBound is the slowest producer answer allowed while a
// telemetry store is away: generous for a loaded CI machine (1.4 s seen
// on a shared 2-core one under the race detector), far below the 10 s a
// write waiting on the store would take.
const unaffectedBound = 3 * time.Second

// checkDeliveryUnaffected asserts that the producers' requests in rs all
// got 202, none slower than bound.
func checkDeliveryUnaffected(t *testing.T, rs []postResult, bound time.Duration) {
	t.Helper()
	for _, r := range rs {
		if r.err != nil {
			t.Errorf("producer during the outage: %v, want 202", r.err)
			break
		}
	}
	if len(rs) == 0 {
		t.Error("no producer request during the outage")
	}
	if worst := maxLatency(rs); worst > bound {
		t.Errorf("slowest producer answer during the outage took %s, want < %s", worst, bound)
	}
}

// TestOutageClickHouse cuts a cluster node's connection to ClickHouse (a
// proxy in between is closed, so connections break and new ones are
// refused) for three seconds while 50 watchers follow 20 jobs: delivery
// goes on as before, telemetry is dropped and counted on /metrics (the
// ring is small, so it fills), and once the proxy is back the node writes
// telemetry again, without a restart.
func TestOutageClickHouse(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	chURL := chtest.URL(t)
	u, err := url.Parse(chURL)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	px, err := netsim.Start("127.0.0.1:0", target, netsim.Profile{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	addr := px.Addr()
	u.Host = addr
	urls := engineURLs{NATS: natstest.NewServer(t), ClickHouse: u.String()}
	a := startOutageNode(t, "node-a", urls, io.Discard, func(c *jobcast.Config) { c.TelemetryBuffer = 200 })
	eps := endpoints(a)
	l := startLoad(ctx, t, eps, eps, 20, 50, 100*time.Millisecond)
	pollUntil(t, 10*time.Second, "telemetry written before the outage", func() bool { return scrapeTelemetry(t, a).written > 0 })
	time.Sleep(time.Second) // load before the outage

	before, c0 := l.watcherStats(), scrapeTelemetry(t, a)
	down := time.Now()
	calm := l.between(time.Time{}, down)
	px.Close()
	counted := pollUntil(t, 10*time.Second, "telemetry write errors and drops counted", func() bool {
		c := scrapeTelemetry(t, a)
		return c.writeErrors > c0.writeErrors && c.dropped+c.lost > c0.dropped+c0.lost
	})
	time.Sleep(time.Until(down.Add(3 * time.Second))) // the outage's length
	during, mid, c1 := l.between(down, time.Now()), l.watcherStats(), scrapeTelemetry(t, a)
	if px, err = netsim.Start(addr, target, netsim.Profile{}); err != nil {
		t.Fatalf("restore the proxy on %s: %v", addr, err)
	}
	up := time.Now()
	checkDeliveryUnaffected(t, during, unaffectedBound)
	checkStayedConnected(t, l, before, mid)

	// Recovery: telemetry recorded after the restore reaches ClickHouse.
	store, err := clickhouse.Open(ctx, clickhouse.Config{URL: chURL})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	countSince := func(ts time.Time) int64 {
		rows, err := store.Query(ctx, fmt.Sprintf("SELECT count() AS n FROM events WHERE ts > toDecimal64('%d.%03d', 3)", ts.Unix(), ts.Nanosecond()/1e6))
		if err != nil || len(rows.Rows) != 1 {
			t.Fatalf("count events: %v", err)
		}
		n, _ := strconv.ParseInt(fmt.Sprint(rows.Rows[0][0]), 10, 64)
		return n
	}
	recovered := pollUntil(t, 20*time.Second, "telemetry written after the restore", func() bool { return countSince(up) > 0 })
	time.Sleep(time.Second) // load after the recovery
	l.finish(client.NewProducer(a.URL(), clusterAPIKey))

	// Every event is accounted for once the node is idle: written, or
	// counted as dropped or lost.
	var c2 telemetryCounts
	pollUntil(t, 20*time.Second, "telemetry idle", func() bool {
		c2 = scrapeTelemetry(t, a)
		return c2.recorded == c2.written+c2.lost && metricValue(t, a, "jobcast_telemetry_buffered") == 0
	})
	if stored := countSince(time.Time{}); float64(stored) < c2.written {
		t.Errorf("ClickHouse holds %d events, the node counted %v written", stored, c2.written)
	}
	checkHeldNotLost(t, c2)
	t.Logf("ClickHouse outage 3s: before it %d producer requests, slowest %s; %d requests during it, all 202, slowest %s; 0 of %d watchers reconnected, every frame delivered; telemetry during it: %v write errors, %v dropped (ring full), %v lost (batch given up), first counted after %s; written again %s after the restore; totals recorded %v written %v dropped %v lost %v",
		len(calm), maxLatency(calm).Round(time.Millisecond), len(during), maxLatency(during).Round(time.Millisecond), len(l.watchers), c1.writeErrors-c0.writeErrors, c1.dropped-c0.dropped, c1.lost-c0.lost,
		counted.Round(time.Millisecond), recovered.Round(time.Millisecond), c2.recorded, c2.written, c2.dropped, c2.lost)
}

// faultyTelemetry is a telemetry store whose writes stall (until the
// write's deadline) or fail, as DuckDB's do when its disk stalls or errs.
type faultyTelemetry struct {
	jobcast.TelemetryStore
	mode atomic.Int32 // faultNone, faultStall, faultFail
}

const (
	faultNone int32 = iota
	faultStall
	faultFail
)

func (f *faultyTelemetry) Write(ctx context.Context, events []jobcast.Event) error {
	switch f.mode.Load() {
	case faultStall:
		<-ctx.Done()
		return fmt.Errorf("append events: %w", ctx.Err())
	case faultFail:
		return errors.New("append events: IO Error: could not write file \"telemetry.duckdb.wal\": No space left on device")
	}
	return f.TelemetryStore.Write(ctx, events)
}

// TestOutageDuckDB makes the embedded telemetry store's writes stall (each
// until its deadline) for 1.5 s, then fail at once for 1.5 s, while 50 watchers follow 20 jobs of an
// embedded server (SQLite jobs, DuckDB telemetry behind the recorder and
// /metrics exporter, wired as serve wires them): delivery goes on as
// before; the stall fills the small ring, which drops and counts; the
// failures are counted; afterwards telemetry reaches DuckDB again.
func TestOutageDuckDB(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	duck, err := duckdb.Open(ctx, filepath.Join(t.TempDir(), "telemetry.duckdb"), duckdb.Options{Threads: 1, MemoryLimit: "256MB"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { duck.Close() })
	store := &faultyTelemetry{TelemetryStore: duck}
	// A write times out after 300ms; serve's 10s would outlast the test.
	rec := telemetry.New(store, telemetry.Options{Node: "embedded", BufferSize: 200, FlushInterval: 100 * time.Millisecond, WriteTimeout: 300 * time.Millisecond})
	rec.Start()
	t.Cleanup(func() { _ = rec.Stop(context.Background()) })
	exp := promexport.New(rec)
	exp.WatchRecorder(rec)
	metric := func(name string) float64 {
		w := httptest.NewRecorder()
		exp.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		return sample(t, w.Body, name)
	}
	srv := jobcasttest.Start(t, jobcasttest.Options{
		SQLiteDir: t.TempDir(), Recorder: exp,
		Config: jobcast.Config{ThrottleDisabled: true, HeartbeatInterval: outageHeartbeat, PongTimeout: 5 * time.Second},
	})
	eps := []endpoint{{name: "embedded", url: srv.URL, apiKey: jobcasttest.APIKey}}
	l := startLoad(ctx, t, eps, eps, 20, 50, 100*time.Millisecond)
	pollUntil(t, 10*time.Second, "telemetry written before the outage", func() bool { return telemetryFrom(metric).written > 0 })
	time.Sleep(time.Second) // load before the outage

	before, c0 := l.watcherStats(), telemetryFrom(metric)
	down := time.Now()
	store.mode.Store(faultStall)
	dropped := pollUntil(t, 10*time.Second, "a full ring dropping and counting", func() bool { return telemetryFrom(metric).dropped > c0.dropped })
	time.Sleep(time.Until(down.Add(1500 * time.Millisecond))) // the stall's length
	store.mode.Store(faultFail)
	errs := pollUntil(t, 10*time.Second, "failed writes counted", func() bool { return telemetryFrom(metric).writeErrors > c0.writeErrors })
	time.Sleep(time.Until(down.Add(3 * time.Second))) // the failures' length
	during, mid, c1 := l.between(down, time.Now()), l.watcherStats(), telemetryFrom(metric)
	up := time.Now()
	store.mode.Store(faultNone)
	checkDeliveryUnaffected(t, during, unaffectedBound)
	checkStayedConnected(t, l, before, mid)

	countSince := func(ts time.Time) int64 {
		rows, err := duck.Query(ctx, "SELECT count(*) AS n FROM events WHERE ts > ?", ts)
		if err != nil || len(rows.Rows) != 1 {
			t.Fatalf("count events: %v", err)
		}
		n, _ := strconv.ParseInt(fmt.Sprint(rows.Rows[0][0]), 10, 64)
		return n
	}
	recovered := pollUntil(t, 20*time.Second, "telemetry written after the restore", func() bool { return countSince(up) > 0 })
	time.Sleep(time.Second) // load after the recovery
	l.finish(srv.Producer)
	var c2 telemetryCounts
	pollUntil(t, 20*time.Second, "telemetry idle", func() bool {
		c2 = telemetryFrom(metric)
		return c2.recorded == c2.written+c2.lost && metric("jobcast_telemetry_buffered") == 0
	})
	if stored := countSince(time.Time{}); float64(stored) != c2.written {
		t.Errorf("DuckDB holds %d events, the recorder counted %v written", stored, c2.written)
	}
	checkHeldNotLost(t, c2)
	t.Logf("DuckDB stall 1.5s then failures 1.5s: %d producer requests during it, all 202, slowest %s; 0 of %d watchers reconnected, every frame delivered; first drop counted after %s of stall, first write error %s into the failures; during it %v dropped (ring full), %v write errors, %v lost; written again %s after the restore; totals recorded %v written %v dropped %v lost %v",
		len(during), maxLatency(during).Round(time.Millisecond), len(l.watchers), dropped.Round(time.Millisecond), errs.Round(time.Millisecond),
		c1.dropped-c0.dropped, c1.writeErrors-c0.writeErrors, c1.lost-c0.lost, recovered.Round(time.Millisecond), c2.recorded, c2.written, c2.dropped, c2.lost)
}
