package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/hub"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/internal/jobcasttest"
	"github.com/jobcast/jobcast/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait; tests never sleep for timing.
const waitTimeout = 15 * time.Second

var epoch = time.Date(2025, 11, 26, 12, 0, 0, 0, time.UTC)

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// env is a test server on a manual clock.
type env struct {
	srv   *jobcasttest.Server
	clock *clocktest.Clock
}

func newEnv(t *testing.T, cfg jobcast.Config) *env {
	t.Helper()
	clock := clocktest.New(epoch)
	return &env{srv: jobcasttest.Start(t, jobcasttest.Options{Config: cfg, Clock: clock}), clock: clock}
}

func (e *env) createJob(t *testing.T) *client.Ticket {
	t.Helper()
	return e.srv.CreateJob(t)
}

func (e *env) send(t *testing.T, jobID string, evs ...protocol.ProducerEvent) {
	t.Helper()
	e.srv.Send(t, jobID, evs...)
}

// connections lists live connections of job via the admin API.
func (e *env) connections(t *testing.T, jobID string) []hub.ConnInfo {
	t.Helper()
	return e.srv.Connections(t, jobID)
}

func started() protocol.ProducerEvent { return jobcasttest.Started() }

func progress(n int) protocol.ProducerEvent { return jobcasttest.Progress(n) }

func errorEv(code string) protocol.ProducerEvent { return jobcasttest.ErrorEvent(code) }

func completed() protocol.ProducerEvent { return jobcasttest.Completed() }

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling interval, not a timing assumption
	}
}

// recorder collects what a Watcher reports.
type recorder struct {
	events chan client.Event
	msgs   chan protocol.Envelope
	readys chan protocol.Ready

	mu  sync.Mutex
	all []protocol.Envelope
	evs []client.Event
}

func newRecorder() *recorder {
	return &recorder{
		events: make(chan client.Event, 1000),
		msgs:   make(chan protocol.Envelope, 1000),
		readys: make(chan protocol.Ready, 100),
	}
}

// hook installs the recorder's callbacks in cfg.
func (r *recorder) hook(cfg *client.Config) {
	cfg.OnEvent = func(e client.Event) {
		r.mu.Lock()
		r.evs = append(r.evs, e)
		r.mu.Unlock()
		r.events <- e
	}
	cfg.OnMessage = func(m protocol.Envelope) {
		r.mu.Lock()
		r.all = append(r.all, m)
		r.mu.Unlock()
		r.msgs <- m
	}
	cfg.OnReady = func(rd protocol.Ready) { r.readys <- rd }
}

// messages returns every message delivered so far.
func (r *recorder) messages() []protocol.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]protocol.Envelope(nil), r.all...)
}

// eventsOf returns the events of one kind so far.
func (r *recorder) eventsOf(kind string) []client.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []client.Event
	for _, e := range r.evs {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits for an event of kind.
func (r *recorder) waitEvent(t *testing.T, kind string) client.Event {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case e := <-r.events:
			if e.Kind == kind {
				return e
			}
		case <-timeout:
			t.Fatalf("timed out waiting for a %q event", kind)
		}
	}
}

// waitReady waits for the next ready frame.
func (r *recorder) waitReady(t *testing.T) protocol.Ready {
	t.Helper()
	select {
	case rd := <-r.readys:
		return rd
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for ready")
		return protocol.Ready{}
	}
}

// waitSeq waits until a message with seq >= n was delivered.
func (r *recorder) waitSeq(t *testing.T, n int64) {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case m := <-r.msgs:
			if m.Seq >= n {
				return
			}
		case <-timeout:
			t.Fatalf("timed out waiting for seq %d", n)
		}
	}
}

// run starts w.Run and returns its result channel; the watcher is stopped
// and waited for when the test ends.
func run(t *testing.T, w *client.Watcher) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	stopped := make(chan struct{})
	go func() {
		done <- w.Run(ctx)
		close(stopped)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-stopped:
		case <-time.After(waitTimeout):
			t.Error("watcher did not stop")
		}
	})
	return done
}

// result waits for Run to return.
func result(t *testing.T, res <-chan error) error {
	t.Helper()
	select {
	case err := <-res:
		return err
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return")
		return nil
	}
}

// front is an HTTP server in front of a test server's API that records
// WebSocket handshakes and can fail or hold them.
type front struct {
	*httptest.Server

	mu       sync.Mutex
	reqs     []*http.Request
	failNext int           // answer this many handshakes with 503
	hold     chan struct{} // when set, handshakes wait until it is closed
}

func newFront(t *testing.T, next http.Handler) *front {
	t.Helper()
	f := &front{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws/progress" {
			next.ServeHTTP(w, r)
			return
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, r.Clone(context.Background()))
		hold := f.hold
		fail := f.failNext > 0
		if fail {
			f.failNext--
		}
		f.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		if fail {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":{"code":"E_UNAVAILABLE","message":"try again"}}`)
			return
		}
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

// wsURL is the front's progress endpoint.
func (f *front) wsURL() string { return "ws" + f.URL[len("http"):] + "/ws/progress" }

// holdHandshakes makes later handshakes wait; the returned func releases them.
func (f *front) holdHandshakes() (release func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.hold = ch
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		f.hold = nil
		f.mu.Unlock()
		close(ch)
	}
}

// failHandshakes makes the next n handshakes fail with 503.
func (f *front) failHandshakes(n int) {
	f.mu.Lock()
	f.failNext = n
	f.mu.Unlock()
}

// requests returns the handshakes seen so far.
func (f *front) requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.reqs...)
}
