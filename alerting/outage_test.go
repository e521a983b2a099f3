package alerting_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/alerting"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/internal/jobcasttest"
	"github.com/jobcast/jobcast/internal/syncbuf"
	"github.com/jobcast/jobcast/protocol"
)

// liveLoad is live delivery beside the alerting service: SDK watchers
// following jobs that a producer drives on an embedded test server.
type liveLoad struct {
	srv      *jobcasttest.Server
	jobs     []*client.Ticket
	watchers []*liveWatcher
	stop     chan struct{}
	wg       sync.WaitGroup
	slowest  atomic.Int64 // ns, producer answers
	failures atomic.Int64
	posted   atomic.Int64
}

type liveWatcher struct {
	job  *client.Ticket
	w    *client.Watcher
	done chan error
	gaps atomic.Int64 // messages whose seq did not follow the last
}

// startLiveLoad starts jobs×2 watchers and one producer per job posting
// progress every 20 ms until stopped.
func startLiveLoad(ctx context.Context, t *testing.T, jobs int) *liveLoad {
	t.Helper()
	l := &liveLoad{
		srv: jobcasttest.Start(t, jobcasttest.Options{Config: jobcast.Config{
			ThrottleDisabled: true, HeartbeatInterval: 200 * time.Millisecond, PongTimeout: 5 * time.Second,
		}}),
		stop: make(chan struct{}),
	}
	var ready sync.WaitGroup
	for range jobs {
		tk := l.srv.CreateJob(t)
		l.jobs = append(l.jobs, tk)
		for range 2 {
			lw := &liveWatcher{job: tk, done: make(chan error, 1)}
			var last int64
			var once sync.Once
			ready.Add(1)
			w, err := client.NewWatcher(client.Config{
				URL: l.srv.WSURL, JobID: tk.JobID, Token: tk.Token,
				OnReady: func(protocol.Ready) { once.Do(ready.Done) },
				OnMessage: func(e protocol.Envelope) {
					if e.Seq != last+1 {
						lw.gaps.Add(1)
					}
					last = e.Seq
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			lw.w = w
			go func() { lw.done <- w.Run(ctx) }()
			l.watchers = append(l.watchers, lw)
		}
	}
	ready.Wait()
	for _, tk := range l.jobs {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for n := 1; ; n++ {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				start := time.Now()
				_, err := l.srv.Producer.SendEvent(ctx, tk.JobID, client.NewEvent("progress", map[string]any{"processedCount": n}))
				if d := time.Since(start).Nanoseconds(); d > l.slowest.Load() {
					l.slowest.Store(d)
				}
				l.posted.Add(1)
				if err != nil {
					l.failures.Add(1)
				}
			}
		}()
	}
	return l
}

// finish completes the jobs and checks that every watcher got every
// message live, in order, and ended with the server's state.
func (l *liveLoad) finish(ctx context.Context, t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	for _, tk := range l.jobs {
		if _, err := l.srv.Producer.SendEvent(ctx, tk.JobID, client.NewEvent("completed", nil)); err != nil {
			t.Fatalf("complete %s: %v", tk.JobID, err)
		}
	}
	for _, lw := range l.watchers {
		select {
		case err := <-lw.done:
			if err != nil {
				t.Errorf("watcher of %s: %v", lw.job.JobID, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("watcher of %s did not end", lw.job.JobID)
		}
		st, err := l.srv.Producer.GetJob(ctx, lw.job.JobID)
		if err != nil {
			t.Fatal(err)
		}
		got := lw.w.State()
		if s := lw.w.Stats(); s.Connects != 1 || lw.gaps.Load() != 0 || got.Seq != st.Seq || got.Status != protocol.StatusCompleted {
			t.Errorf("watcher of %s: %d connections, %d seq gaps, ended at seq %d %s; server seq %d", lw.job.JobID, s.Connects, lw.gaps.Load(), got.Seq, got.Status, st.Seq)
		}
	}
	if f := l.failures.Load(); f != 0 {
		t.Errorf("%d of %d producer requests failed during the notifier outage", f, l.posted.Load())
	}
	if d := time.Duration(l.slowest.Load()); d > 2*time.Second {
		t.Errorf("slowest producer answer during the notifier outage: %s", d)
	}
}

// TestNotifierOutageUnderLoad: while live delivery runs (10 SDK watchers,
// 5 jobs, a producer per job posting every 20 ms), an alert fires to a
// Slack webhook that first hangs (each try times out), then answers 500,
// then recovers. Evaluation returns at once throughout; each failed try
// is logged while retrying; the notification reaches Slack once, in
// Slack's wire format, on the third try, and the history counts the
// tries; delivery to the watchers misses nothing and producers see no
// error.
func TestNotifierOutageUnderLoad(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The Slack webhook's three states, each the alerting tests' fake
	// receiver; the URL stays the same.
	phases := []*recorder{newRecorder(t, 0, true), newRecorder(t, 500, false), newRecorder(t, 200, false)}
	var phase atomic.Int32
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		phases[phase.Load()].srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(slack.Close)
	logs := &syncbuf.Buffer{}
	h := newHarness(t, alerting.Config{
		DashboardURL: dash,
		Receivers: []alerting.Receiver{{
			Name: "slack", Type: alerting.TypeSlack, URL: slack.URL + "/services/T000/B000/XXXX",
			MaxAttempts: 5, Timeout: alerting.Duration(300 * time.Millisecond),
		}},
	}, func(o *alerting.Options) { o.Log = slog.New(slog.NewTextHandler(logs, nil)) })
	live := startLiveLoad(ctx, t, 5)

	evalFast := func(what string, d time.Duration) {
		t.Helper()
		start := time.Now()
		h.eval(d)
		if took := time.Since(start); took > time.Second {
			t.Fatalf("evaluation %s took %s", what, took)
		}
		if got := h.states("error_rate_high"); got["{}"] != jobcast.AlertFiring {
			t.Fatalf("after evaluation %s: error_rate_high %v, want firing", what, got)
		}
	}
	h.errorBurst("csv_import")
	evalFast("while Slack hangs", 0)
	phases[0].wait(t, 0) // the first try hangs until its 300 ms timeout
	waitFor(t, "the 1 s backoff after the timed-out try", func() bool { return h.clock.Pending() == 1 })
	evalFast("while a notification is being retried", 0)

	phase.Store(1)
	h.clock.Advance(time.Second)
	phases[1].wait(t, 0) // the second try: 500
	waitFor(t, "the 2 s backoff after the 500", func() bool { return h.clock.Pending() == 1 })
	evalFast("during the backoff", 0)

	phase.Store(2)
	h.clock.Advance(2 * time.Second)
	body := phases[2].wait(t, 0)
	var msg struct {
		Text   string            `json:"text"`
		Blocks []json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal(body, &msg); err != nil || !strings.HasPrefix(msg.Text, "[FIRING:1] error_rate_high") || len(msg.Blocks) == 0 {
		t.Fatalf("Slack got %s (%v)", body, err)
	}
	rec := h.history(1)[0]
	if rec.Outcome != jobcast.NotifySent || rec.Attempts != 3 || rec.Receiver != "slack" {
		t.Errorf("history: %+v, want sent on the 3rd attempt", rec)
	}
	out := logs.String()
	for _, want := range []string{"attempt=1", "timed out after 300ms", "attempt=2", "HTTP 500"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log does not say %q about the failed tries:\n%s", want, out)
		}
	}
	// Delivered once: later evaluations within the repeat interval send
	// nothing more.
	evalFast("after the delivery", 30*time.Second)
	if n := phases[0].count() + phases[1].count() + phases[2].count(); n != 3 {
		t.Errorf("Slack got %d requests, want 3 (timeout, 500, delivered)", n)
	}
	live.finish(ctx, t)
	t.Logf("notifier outage (hang, 500, ok) with %d watchers and %d producer requests: evaluation never held up, delivered on try %d, 0 producer errors, slowest producer answer %s, 0 seq gaps",
		len(live.watchers), live.posted.Load(), rec.Attempts, time.Duration(live.slowest.Load()).Round(time.Millisecond))
}
