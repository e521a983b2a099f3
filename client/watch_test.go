package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/protocol"
)

func seqsOf(ms []protocol.Envelope) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

// checkTokenIn asserts that a handshake carried the token the way mode says,
// and only that way.
func checkTokenIn(t *testing.T, r *http.Request, mode, token string) {
	t.Helper()
	header := r.Header.Get("Authorization") == "Bearer "+token
	query := r.URL.Query().Get("token") == token
	protos := websocket.Subprotocols(r)
	sub := slices.Contains(protos, protocol.Subprotocol) && slices.Contains(protos, protocol.BearerSubprotocolPrefix+token)
	anywhere := strings.Contains(r.Header.Get("Authorization"), token) || strings.Contains(r.URL.RawQuery, token) ||
		strings.Contains(r.Header.Get("Sec-Websocket-Protocol"), token)
	var ok bool
	switch mode {
	case "", "header":
		ok = header && !query && !sub
	case "query":
		ok = query && !header && !sub
	case "subprotocol":
		ok = sub && !header && !query
	case "hello":
		ok = !anywhere
	}
	if !ok {
		t.Errorf("TokenIn %q: handshake had Authorization=%v query=%v subprotocol=%v", mode, header, query, sub)
	}
}

// TestWatcherResume drops the connection mid-job in each token mode: the
// watcher reconnects, resumes from its lastSeq, and OnMessage sees every
// non-progress message once, in order, plus the latest progress.
func TestWatcherResume(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"header", "query", "subprotocol", "hello"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, jobcast.Config{ThrottleDisabled: true})
			f := newFront(t, e.srv.API)
			tk := e.createJob(t)
			rec := newRecorder()
			cfg := client.Config{URL: f.wsURL(), JobID: tk.JobID, Token: tk.Token, TokenIn: mode,
				MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
				Context: client.ClientContext{AppVersion: "1.2.3", NetworkType: "wifi"}}
			rec.hook(&cfg)
			w, err := client.NewWatcher(cfg)
			if err != nil {
				t.Fatal(err)
			}
			res := run(t, w)
			if ev := rec.waitEvent(t, "connected"); ev.Resumed {
				t.Error("first connection says resumed")
			}
			e.send(t, tk.JobID, started(), progress(1), errorEv(protocol.ErrGeminiTimeout), progress(2))
			rec.waitSeq(t, 4)

			// The network drops; while the watcher is away the job moves on.
			release := f.holdHandshakes()
			w.Drop()
			if ev := rec.waitEvent(t, "disconnected"); ev.Reason != "connection_lost" {
				t.Errorf("disconnect reason %q", ev.Reason)
			}
			waitFor(t, "the server to notice", func() bool { return e.srv.Hub.ConnCount() == 0 })
			e.send(t, tk.JobID, errorEv("E_ONE"), progress(3), progress(4), errorEv("E_TWO"), progress(5))
			release()
			if ev := rec.waitEvent(t, "connected"); !ev.Resumed {
				t.Error("reconnection not resumed")
			}
			e.send(t, tk.JobID, completed())
			if err := result(t, res); err != nil {
				t.Fatalf("Run = %v", err)
			}

			if got, want := seqsOf(rec.messages()), []int64{1, 2, 3, 4, 5, 8, 9, 10}; !slices.Equal(got, want) {
				t.Errorf("OnMessage seqs = %v, want %v", got, want)
			}
			st := w.State()
			if st.Status != protocol.StatusCompleted || st.Seq != 10 || st.ProcessedCount != 100 || st.LastError == nil || st.LastError.Code != "E_TWO" {
				t.Errorf("state = %+v", st)
			}
			stats := w.Stats()
			if stats.Connects != 2 || stats.Resumes != 1 || stats.Messages != 8 || stats.Duplicates != 0 {
				t.Errorf("stats = %+v", stats)
			}
			if w.LastSeq() != 10 {
				t.Errorf("LastSeq = %d", w.LastSeq())
			}

			reqs := f.requests()
			if len(reqs) != 2 {
				t.Fatalf("%d handshakes, want 2", len(reqs))
			}
			for _, r := range reqs {
				checkTokenIn(t, r, mode, tk.Token)
				if r.URL.Query().Get("jobId") != tk.JobID || r.Header.Get("X-App-Version") != "1.2.3" || r.Header.Get("X-Network-Type") != "wifi" {
					t.Errorf("handshake lacks job or client context: %v %v", r.URL, r.Header)
				}
			}
			if h := reqs[0].Header; h.Get("X-Last-Seq") != "" || h.Get("X-Reconnect-Attempt") != "" {
				t.Errorf("first handshake has resume headers: %v", h)
			}
			if h := reqs[1].Header; h.Get("X-Last-Seq") != "4" || h.Get("X-Reconnect-Attempt") != "0" || h.Get("X-Last-Disconnect") != "connection_lost" {
				t.Errorf("reconnect headers: X-Last-Seq=%q X-Reconnect-Attempt=%q X-Last-Disconnect=%q",
					h.Get("X-Last-Seq"), h.Get("X-Reconnect-Attempt"), h.Get("X-Last-Disconnect"))
			}
		})
	}
}

// After failed attempts the reconnecting watcher tells the server how many
// there were and why the last connection ended.
func TestWatcherReconnectHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	f := newFront(t, e.srv.API)
	tk := e.createJob(t)
	rec := newRecorder()
	cfg := client.Config{URL: f.wsURL(), JobID: tk.JobID, Token: tk.Token, MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}
	rec.hook(&cfg)
	w, err := client.NewWatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, w)
	rec.waitEvent(t, "connected")
	f.failHandshakes(3)
	w.Drop()
	rec.waitEvent(t, "connected")
	waitFor(t, "the new connection to be listed", func() bool { return len(e.connections(t, tk.JobID)) == 1 })
	c := e.connections(t, tk.JobID)[0].Client
	if c.ReconnectAttempt != 3 {
		t.Errorf("reconnectAttempt = %d, want 3", c.ReconnectAttempt)
	}
	if c.LastDisconnect != "connection_lost" {
		t.Errorf("lastDisconnect = %q, want connection_lost (why the last connection ended)", c.LastDisconnect)
	}
	// The attempts counter in events agrees.
	var attempts []int
	for _, ev := range rec.eventsOf("reconnecting") {
		attempts = append(attempts, ev.Attempt)
	}
	if want := []int{0, 1, 2, 3}; !slices.Equal(attempts, want) {
		t.Errorf("reconnecting attempts = %v, want %v", attempts, want)
	}
	// A second drop starts counting again.
	w.Drop()
	rec.waitEvent(t, "connected")
	waitFor(t, "the new connection to be listed", func() bool { return len(e.connections(t, tk.JobID)) == 1 })
	if c := e.connections(t, tk.JobID)[0].Client; c.ReconnectAttempt != 0 || c.LastDisconnect != "connection_lost" {
		t.Errorf("after a clean reconnect: %+v", c)
	}
}

// TestWatcherBackoff checks the delays before each reconnect against a
// server that is not there and one that refuses: each failure doubles the
// step, jitter keeps the delay in its upper half, MaxBackoff caps it, and
// MaxAttempts ends the run.
func TestWatcherBackoff(t *testing.T) {
	t.Parallel()
	refused := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "ws://" + addr + "/ws/progress"
	}
	unavailable := func(t *testing.T) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"code":"E_UNAVAILABLE","message":"restarting"}}`))
		}))
		t.Cleanup(s.Close)
		return "ws" + strings.TrimPrefix(s.URL, "http") + "/ws/progress"
	}
	const minB, maxB, attempts = 4 * time.Millisecond, 40 * time.Millisecond, 8
	for _, tc := range []struct {
		name string
		url  func(*testing.T) string
	}{
		{"connection refused", refused},
		{"HTTP 503", unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			cfg := client.Config{URL: tc.url(t), JobID: "job-1", Token: "tok", MinBackoff: minB, MaxBackoff: maxB, MaxAttempts: attempts}
			rec.hook(&cfg)
			w, err := client.NewWatcher(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = result(t, run(t, w))
			if !errors.Is(err, client.ErrGaveUp) {
				t.Fatalf("Run = %v, want ErrGaveUp", err)
			}
			evs := rec.eventsOf("reconnecting")
			if len(evs) != attempts-1 {
				t.Fatalf("%d reconnecting events, want %d", len(evs), attempts-1)
			}
			for i, ev := range evs {
				if ev.Attempt != i+1 {
					t.Errorf("event %d: attempt %d", i, ev.Attempt)
				}
				step := minB << ev.Attempt
				if step > maxB {
					step = maxB
				}
				if ev.Delay < step/2 || ev.Delay > step {
					t.Errorf("attempt %d: delay %v outside [%v, %v]", ev.Attempt, ev.Delay, step/2, step)
				}
				if ev.Delay > maxB {
					t.Errorf("attempt %d: delay %v above MaxBackoff", ev.Attempt, ev.Delay)
				}
				if ev.Reason == "" {
					t.Errorf("attempt %d: no reason", ev.Attempt)
				}
			}
			if n := len(rec.eventsOf("connected")); n != 0 {
				t.Errorf("%d connected events", n)
			}
			if st := w.Stats(); st.Failures != attempts || st.Connects != 0 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

// A server's Retry-After is a floor under the backoff delay.
func TestWatcherRetryAfter(t *testing.T) {
	t.Parallel()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":{"code":"E_RATE_LIMITED","message":"slow down"}}`))
	}))
	t.Cleanup(s.Close)
	rec := newRecorder()
	cfg := client.Config{URL: "ws" + strings.TrimPrefix(s.URL, "http"), JobID: "j", Token: "tok", MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
	rec.hook(&cfg)
	w, err := client.NewWatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, w)
	if ev := rec.waitEvent(t, "reconnecting"); ev.Delay != 3*time.Second {
		t.Errorf("delay = %v, want the server's Retry-After of 3s", ev.Delay)
	}
}

func TestWatcherTokenRefresh(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"header", "query", "subprotocol", "hello"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, jobcast.Config{TokenTTL: time.Minute})
			tk := e.createJob(t)
			e.clock.Advance(2 * time.Minute) // tk.Token is expired now
			var calls atomic.Int32
			rec := newRecorder()
			cfg := client.Config{URL: e.srv.WSURL, JobID: tk.JobID, Token: tk.Token, TokenIn: mode,
				MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
				TokenFunc: func(ctx context.Context) (string, error) {
					calls.Add(1)
					nt, err := e.srv.Producer.NewToken(ctx, tk.JobID)
					if err != nil {
						return "", err
					}
					return nt.Token, nil
				}}
			rec.hook(&cfg)
			w, err := client.NewWatcher(cfg)
			if err != nil {
				t.Fatal(err)
			}
			res := run(t, w)
			rec.waitEvent(t, "connected")
			e.send(t, tk.JobID, started(), completed())
			if err := result(t, res); err != nil {
				t.Fatalf("Run = %v", err)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("TokenFunc called %d times, want 1", n)
			}
			rs := rec.eventsOf("reconnecting")
			if len(rs) != 1 || !strings.Contains(rs[0].Reason, protocol.ErrTokenExpired) {
				t.Errorf("reconnecting events = %+v, want one after the expired token", rs)
			}
		})
	}
}

func TestWatcherTokenFuncOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	tk := e.createJob(t)
	var calls atomic.Int32
	rec := newRecorder()
	cfg := client.Config{URL: e.srv.WSURL, JobID: tk.JobID,
		TokenFunc: func(ctx context.Context) (string, error) {
			calls.Add(1)
			return tk.Token, nil
		}}
	rec.hook(&cfg)
	w, err := client.NewWatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, w)
	rec.waitEvent(t, "connected")
	if n := calls.Load(); n != 1 {
		t.Errorf("TokenFunc called %d times, want 1", n)
	}
	if n := len(rec.eventsOf("disconnected")); n != 0 {
		t.Errorf("%d disconnects before the first connection", n)
	}
}

// Errors that retrying cannot fix end Run at once, without a retry loop.
func TestWatcherFatalErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{TokenTTL: time.Minute})
	job := e.createJob(t)
	other := e.createJob(t)
	expired := e.createJob(t)
	e.clock.Advance(2 * time.Minute)
	ctx := ctxT(t)
	fresh := func(jobID string) string {
		t.Helper()
		nt, err := e.srv.Producer.NewToken(ctx, jobID)
		if err != nil {
			t.Fatal(err)
		}
		return nt.Token
	}
	otherTok := fresh(other.JobID)
	unknownTok, _, err := e.srv.Tokens.Issue("no-such-job")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		jobID    string
		token    string
		tokenFn  func(context.Context) (string, error)
		wantErr  error
		wantFnN  int32
		wantFail int // failed attempts before giving up
	}{
		{name: "job not found", jobID: "no-such-job", token: unknownTok, wantErr: client.ErrJobNotFound},
		{name: "garbage token", jobID: job.JobID, token: "garbage", wantErr: client.ErrTokenInvalid},
		{name: "token for another job", jobID: job.JobID, token: otherTok, wantErr: client.ErrTokenInvalid},
		{name: "expired, no TokenFunc", jobID: expired.JobID, token: expired.Token, wantErr: client.ErrTokenExpired},
		{name: "rejected, refreshed once", jobID: job.JobID, token: "garbage", wantErr: client.ErrTokenInvalid, wantFnN: 1, wantFail: 1,
			tokenFn: func(context.Context) (string, error) { return "still-garbage", nil }},
		{name: "TokenFunc fails", jobID: expired.JobID, token: expired.Token, wantErr: errTokenSource, wantFnN: 1,
			tokenFn: func(context.Context) (string, error) { return "", errTokenSource }},
	}
	for _, tt := range tests {
		for _, mode := range []string{"header", "hello"} {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				var calls atomic.Int32
				rec := newRecorder()
				cfg := client.Config{URL: e.srv.WSURL, JobID: tt.jobID, Token: tt.token, TokenIn: mode,
					MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
				if tt.tokenFn != nil {
					cfg.TokenFunc = func(ctx context.Context) (string, error) {
						calls.Add(1)
						return tt.tokenFn(ctx)
					}
				}
				rec.hook(&cfg)
				w, err := client.NewWatcher(cfg)
				if err != nil {
					t.Fatal(err)
				}
				err = result(t, run(t, w))
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Run = %v, want %v", err, tt.wantErr)
				}
				if n := calls.Load(); n != tt.wantFnN {
					t.Errorf("TokenFunc called %d times, want %d", n, tt.wantFnN)
				}
				if n := len(rec.eventsOf("reconnecting")); n != tt.wantFail {
					t.Errorf("%d reconnecting events, want %d", n, tt.wantFail)
				}
				if n := len(rec.eventsOf("connected")); n != 0 {
					t.Errorf("%d connected events", n)
				}
			})
		}
	}
}

var errTokenSource = errors.New("token source down")

// Revoking the tokens closes a live watcher with 4003; without a TokenFunc it
// stops with ErrTokenInvalid.
func TestWatcherRevoked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	tk := e.createJob(t)
	rec := newRecorder()
	cfg := client.Config{URL: e.srv.WSURL, JobID: tk.JobID, Token: tk.Token, MinBackoff: time.Millisecond}
	rec.hook(&cfg)
	w, err := client.NewWatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res := run(t, w)
	rec.waitEvent(t, "connected")
	if err := e.srv.Producer.RevokeTokens(ctxT(t), tk.JobID); err != nil {
		t.Fatal(err)
	}
	if err := result(t, res); !errors.Is(err, client.ErrTokenInvalid) {
		t.Fatalf("Run = %v, want ErrTokenInvalid", err)
	}
	if ds := rec.eventsOf("disconnected"); len(ds) != 1 || ds[0].CloseCode != protocol.CloseTokenInvalid {
		t.Errorf("disconnects = %+v, want one with 4003", ds)
	}
}

// The watcher answers server pings with the ping's serverTime, so the server
// measures RTT.
func TestWatcherAnswersPings(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{HeartbeatInterval: 10 * time.Second, PongTimeout: 5 * time.Second})
	tk := e.createJob(t)
	rec := newRecorder()
	cfg := client.Config{URL: e.srv.WSURL, JobID: tk.JobID, Token: tk.Token}
	rec.hook(&cfg)
	w, err := client.NewWatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, w)
	if r := rec.waitReady(t); r.HeartbeatIntervalMs != 10000 || r.PongTimeoutMs != 5000 {
		t.Errorf("ready = %+v", r)
	}
	// Each ping is answered before the next one is due; an unanswered one
	// would close the connection with 4008 after 5s.
	for i := 1; i <= 3; i++ {
		e.clock.Advance(10 * time.Second)
		waitFor(t, "the pong", func() bool {
			cs := e.connections(t, tk.JobID)
			return len(cs) == 1 && cs[0].Heartbeats == int64(i)
		})
	}
	if st := w.Stats(); st.Pings != 3 || st.Connects != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// runToEnd runs a watcher with a recorder hooked into cfg until its job
// ends, failing the test if Run returns an error.
func runToEnd(t *testing.T, cfg client.Config) (*client.Watcher, *recorder) {
	t.Helper()
	rec := newRecorder()
	rec.hook(&cfg)
	w, err := client.NewWatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := result(t, run(t, w)); err != nil {
		t.Fatalf("Run = %v", err)
	}
	return w, rec
}

// scripted is a fake jobcast server: each handshake runs script on the
// upgraded connection.
type scripted struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
	conn chan int // the index of each handshake
}

func newScripted(t *testing.T, script func(n int, c *websocket.Conn)) *scripted {
	t.Helper()
	s := &scripted{conn: make(chan int, 100)}
	up := websocket.Upgrader{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.reqs = append(s.reqs, r.Clone(context.Background()))
		n := len(s.reqs)
		s.mu.Unlock()
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		s.conn <- n
		script(n, c)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *scripted) wsURL() string { return "ws" + strings.TrimPrefix(s.URL, "http") + "/ws/progress" }

func (s *scripted) request(i int) *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs[i]
}

func writeEnv(c *websocket.Conn, env protocol.Envelope, payload string) error {
	env.V = protocol.Version
	env.Payload = []byte(payload)
	data, err := env.Encode()
	if err != nil {
		return err
	}
	return c.WriteMessage(websocket.TextMessage, data)
}

// drain reads until the peer goes away.
func drain(c *websocket.Conn) {
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			return
		}
	}
}

// A server that accepts the connection, says ready and then goes silent is
// dead: the watcher gives up on it and reconnects.
func TestWatcherDetectsDeadServer(t *testing.T) {
	t.Parallel()
	s := newScripted(t, func(n int, c *websocket.Conn) {
		_ = writeEnv(c, protocol.Envelope{Type: protocol.TypeReady, JobID: "j"},
			`{"connectionId":"c","heartbeatIntervalMs":100,"pongTimeoutMs":100,"throttleMs":0,"state":{"jobId":"j","status":"running","seq":0}}`)
		drain(c) // and never write again
	})
	rec := newRecorder()
	cfg := client.Config{URL: s.wsURL(), JobID: "j", Token: "tok", MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
	rec.hook(&cfg)
	w, err := client.NewWatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	run(t, w)
	rec.waitEvent(t, "connected")
	ev := rec.waitEvent(t, "disconnected")
	if ev.Reason != "heartbeat_timeout" || ev.CloseCode != 0 {
		t.Errorf("disconnect = %+v, want heartbeat_timeout", ev)
	}
	rec.waitEvent(t, "connected")
	t.Logf("dead server detected and left in %v", time.Since(start))
	h := s.request(1).Header
	if h.Get("X-Last-Disconnect") != "heartbeat_timeout" || h.Get("X-Last-Seq") != "0" {
		t.Errorf("reconnect headers: %v", h)
	}
}

// Against a scripted server: duplicates and out-of-order seqs are dropped,
// connection-level frames are not messages, pings are answered with their
// serverTime, and a terminal message ends Run.
func TestWatcherScripted(t *testing.T) {
	t.Parallel()
	pong := make(chan string, 1)
	s := newScripted(t, func(n int, c *websocket.Conn) {
		job := protocol.Envelope{JobID: "j", Pipeline: "p"}
		ready := job
		ready.Type = protocol.TypeReady
		_ = writeEnv(c, ready, `{"connectionId":"c","heartbeatIntervalMs":30000,"pongTimeoutMs":10000,"state":{"jobId":"j","status":"pending"}}`)
		ping := job
		ping.Type = protocol.TypePing
		_ = writeEnv(c, ping, `{"serverTime":424242}`)
		_, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		pong <- string(data)
		send := func(typ string, seq int64, payload string) {
			m := job
			m.Type, m.Seq = typ, seq
			_ = writeEnv(c, m, payload)
		}
		send(protocol.TypeJobStarted, 1, `{"totalCount":10}`)
		send(protocol.TypeJobProgress, 2, `{"processedCount":3}`)
		send(protocol.TypeJobProgress, 2, `{"processedCount":3}`) // duplicate
		send(protocol.TypeJobStarted, 1, `{"totalCount":10}`)     // stale
		send(protocol.TypeError, 0, `{"code":"E_PROTOCOL","message":"connection-level"}`)
		send("job_future_type", 0, `{}`)
		_ = c.WriteMessage(websocket.TextMessage, []byte("not json"))
		send(protocol.TypeError, 3, `{"code":"E_GEMINI_TIMEOUT","message":"slow","retryable":true}`)
		send(protocol.TypeJobCompleted, 4, `{"successCount":9,"failureCount":1}`)
		_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(protocol.CloseJobFinished, "job finished"))
		drain(c)
	})
	w, rec := runToEnd(t, client.Config{URL: s.wsURL(), JobID: "j", Token: "tok"})
	p := <-pong
	env, err := protocol.DecodeClientFrame([]byte(p))
	if err != nil || env.Type != protocol.TypePong || !strings.Contains(string(env.Payload), `"serverTime":424242`) {
		t.Errorf("pong = %s (%v)", p, err)
	}
	if got := seqsOf(rec.messages()); !slices.Equal(got, []int64{1, 2, 3, 4}) {
		t.Errorf("OnMessage seqs = %v", got)
	}
	st := w.State()
	if st.Status != protocol.StatusCompleted || st.SuccessCount != 9 || st.FailureCount != 1 || st.ProcessedCount != 10 ||
		st.TotalCount != 10 || st.LastError == nil || st.LastError.Code != "E_GEMINI_TIMEOUT" || !st.LastError.Retryable {
		t.Errorf("state = %+v", st)
	}
	if stats := w.Stats(); stats.Duplicates != 2 || stats.Messages != 4 || stats.Pings != 1 {
		t.Errorf("stats = %+v", stats)
	}
}

func TestNewWatcherValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  client.Config
	}{
		{"no URL", client.Config{Token: "t"}},
		{"no token", client.Config{URL: "ws://x"}},
		{"bad TokenIn", client.Config{URL: "ws://x", Token: "t", TokenIn: "cookie"}},
	} {
		if _, err := client.NewWatcher(tc.cfg); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// A handshake refused with a 4xx that no retry can fix (a refused origin, a
// wrong path) ends Run at once with the server's answer.
func TestWatcherStopsOnPermanentHandshakeErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{AllowedOrigins: []string{"https://app.example.com"}})
	job := e.createJob(t)
	for _, tc := range []struct {
		name   string
		url    string
		origin string
		status int
	}{
		{"refused origin", e.srv.WSURL, "https://evil.example.com", http.StatusForbidden},
		{"wrong path", e.srv.URL + "/ws/nowhere", "", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			cfg := client.Config{URL: strings.Replace(tc.url, "http://", "ws://", 1), JobID: job.JobID, Token: job.Token,
				MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
			if tc.origin != "" {
				cfg.Header = http.Header{"Origin": {tc.origin}}
			}
			rec.hook(&cfg)
			w, err := client.NewWatcher(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = result(t, run(t, w))
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Status != tc.status {
				t.Fatalf("Run = %v, want an *APIError with status %d", err, tc.status)
			}
			if n := len(rec.eventsOf("reconnecting")); n != 0 {
				t.Errorf("%d retries of a permanent error", n)
			}
		})
	}
}

// When a resuming watcher learns from ready that the server knows less than
// it saw (a restored store), it takes the server's seq numbers again instead
// of dropping them as duplicates.
func TestWatcherAcceptsServerRollback(t *testing.T) {
	t.Parallel()
	s := newScripted(t, func(n int, c *websocket.Conn) {
		job := protocol.Envelope{JobID: "j", Pipeline: "p"}
		send := func(typ string, seq int64, payload string) {
			m := job
			m.Type, m.Seq = typ, seq
			_ = writeEnv(c, m, payload)
		}
		if n == 1 {
			send(protocol.TypeReady, 0, `{"connectionId":"c1","heartbeatIntervalMs":30000,"pongTimeoutMs":10000,"state":{"jobId":"j","status":"running","seq":0}}`)
			send(protocol.TypeJobStarted, 1, `{"totalCount":10}`)
			send(protocol.TypeJobProgress, 5, `{"processedCount":5}`)
			_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(protocol.CloseGoingAway, "restart"))
			drain(c)
			return
		}
		send(protocol.TypeReady, 0, `{"connectionId":"c2","heartbeatIntervalMs":30000,"pongTimeoutMs":10000,"resumed":true,"lastSeq":2,"state":{"jobId":"j","status":"running","seq":2,"processedCount":2}}`)
		send(protocol.TypeJobProgress, 3, `{"processedCount":3}`)
		send(protocol.TypeJobCompleted, 4, `{"successCount":10}`)
		_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(protocol.CloseJobFinished, "job finished"))
		drain(c)
	})
	w, rec := runToEnd(t, client.Config{URL: s.wsURL(), JobID: "j", Token: "tok", MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	if got := s.request(1).Header.Get("X-Last-Seq"); got != "5" {
		t.Errorf("X-Last-Seq on reconnect = %q, want 5", got)
	}
	if got := seqsOf(rec.messages()); !slices.Equal(got, []int64{1, 5, 3, 4}) {
		t.Errorf("OnMessage seqs = %v, want [1 5 3 4]", got)
	}
	if st := w.State(); st.Status != protocol.StatusCompleted || st.Seq != 4 {
		t.Errorf("state = %+v", st)
	}
}

// The watcher reads every frame into one buffer it reuses: each message
// handed to OnMessage keeps its own payload, also across a frame larger
// than the buffer it keeps, and the job's state is right.
func TestWatcherMessagesOwnTheirPayloads(t *testing.T) {
	t.Parallel()
	big := `{"totalCount":40,"note":"` + strings.Repeat("x", 100<<10) + `"}`
	var want []string
	want = append(want, big)
	for i := 1; i <= 40; i++ {
		want = append(want, fmt.Sprintf(`{"processedCount":%d,"sentNs":%d}`, i, 1000000+i*i))
	}
	want = append(want, `{"successCount":40,"failureCount":0,"result":{"rows":40}}`)
	s := newScripted(t, func(n int, c *websocket.Conn) {
		job := protocol.Envelope{JobID: "job-own", Pipeline: "csv"}
		ready := job
		ready.Type = protocol.TypeReady
		_ = writeEnv(c, ready, `{"connectionId":"c","heartbeatIntervalMs":30000,"pongTimeoutMs":10000,"state":{"jobId":"job-own","status":"pending"}}`)
		for i, p := range want {
			m := job
			m.Seq = int64(i + 1)
			switch {
			case i == 0:
				m.Type = protocol.TypeJobStarted
			case i == len(want)-1:
				m.Type = protocol.TypeJobCompleted
			default:
				m.Type = protocol.TypeJobProgress
			}
			_ = writeEnv(c, m, p)
		}
		_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(protocol.CloseJobFinished, "job finished"))
		drain(c)
	})
	w, rec := runToEnd(t, client.Config{URL: s.wsURL(), JobID: "job-own", Token: "tok"})
	got := rec.messages()
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i, m := range got {
		if string(m.Payload) != want[i] || m.JobID != "job-own" || m.Pipeline != "csv" || m.Seq != int64(i+1) {
			t.Errorf("message %d = %s %s seq %d payload %.60s, want payload %.60s", i, m.JobID, m.Pipeline, m.Seq, m.Payload, want[i])
		}
	}
	st := w.State()
	if st.Status != protocol.StatusCompleted || st.TotalCount != 40 || st.ProcessedCount != 40 || string(st.Result) != `{"rows":40}` {
		t.Errorf("state = %+v", st)
	}
}

// BenchmarkWatcherRead is a watcher reading progress frames from a real
// loopback WebSocket, callbacks included (the server's writes are in the
// figures too): the load generator's cost per delivered frame.
func BenchmarkWatcherRead(b *testing.B) {
	frames := make(chan int, 1)
	s := newScripted(&testing.T{}, func(n int, c *websocket.Conn) {
		job := protocol.Envelope{JobID: "job-bench", Pipeline: "csv"}
		ready := job
		ready.Type = protocol.TypeReady
		_ = writeEnv(c, ready, `{"connectionId":"c","heartbeatIntervalMs":30000,"pongTimeoutMs":10000,"state":{"jobId":"job-bench","status":"running"}}`)
		count := <-frames
		for i := 1; i <= count; i++ {
			m := job
			m.Type, m.Seq = protocol.TypeJobProgress, int64(i)
			_ = writeEnv(c, m, fmt.Sprintf(`{"processedCount":%d,"sentNs":1764000000000000000}`, i))
		}
		done := job
		done.Type, done.Seq = protocol.TypeJobCompleted, int64(count+1)
		_ = writeEnv(c, done, `{"successCount":1}`)
		_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(protocol.CloseJobFinished, "job finished"))
		drain(c)
	})
	defer s.Close()
	var got int
	w, err := client.NewWatcher(client.Config{URL: s.wsURL(), JobID: "job-bench", Token: "tok",
		OnReady:   func(protocol.Ready) { b.ResetTimer() },
		OnMessage: func(protocol.Envelope) { got++ }})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	frames <- b.N
	if err := w.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	if got != b.N+1 {
		b.Fatalf("%d messages, want %d", got, b.N+1)
	}
}
