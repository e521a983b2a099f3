package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jobcast/jobcast/protocol"
)

// Errors Run returns when retrying cannot help.
var (
	ErrJobNotFound  = errors.New("jobcast: job not found")
	ErrTokenInvalid = errors.New("jobcast: token not valid for this job")
	ErrTokenExpired = errors.New("jobcast: token expired and no TokenFunc to refresh it")
	ErrGaveUp       = errors.New("jobcast: gave up reconnecting")
)

// ClientContext is what the client tells the server about itself; the
// server segments telemetry by it.
type ClientContext struct {
	AppVersion  string
	OSVersion   string
	NetworkType string // wifi, cellular, ethernet or unknown
	DeviceModel string
}

// Config configures a Watcher.
type Config struct {
	// URL is the WebSocket endpoint, e.g. ws://host:8080/ws/progress, or the
	// websocketUrl returned at job creation.
	URL string
	// URLs are more endpoints of the same cluster, for clients that reach
	// the nodes directly instead of through a load balancer. The watcher
	// shuffles URL and URLs once and connects to the first; after a failed
	// attempt or a connection that ended for any reason but an expired
	// token it moves on to the next, round-robin. Each watcher's own order
	// spreads the clients of a dead node over all the others. Every node
	// of a cluster knows every job, so a refusal (404, 403) stays final.
	URLs  []string
	JobID string
	// Token opens the job; TokenFunc, if set, is called for a fresh one when
	// the server says the token expired (and once when it was rejected), and
	// for the first one when Token is empty.
	Token     string
	TokenFunc func(ctx context.Context) (string, error)
	Context   ClientContext
	// TokenIn selects how the token travels: "header" (default),
	// "query", "subprotocol" (as browsers must) or "hello".
	TokenIn string
	// MinBackoff and MaxBackoff shape reconnect delays (defaults 250ms,
	// 30s): the step starts at MinBackoff and doubles with each failed
	// attempt up to MaxBackoff; the delay is drawn from [step/2, step], so
	// the first retry may come after MinBackoff/2.
	MinBackoff, MaxBackoff time.Duration
	// MaxAttempts stops after this many failed attempts in a row (0: never).
	MaxAttempts int
	// Header adds request headers to every handshake (an Origin, a header
	// a proxy in front of jobcast wants); the watcher's own headers win.
	Header http.Header
	// Dialer dials the WebSocket (default: 10s handshake timeout).
	Dialer *websocket.Dialer

	// OnReady is called for each ready frame (each connection).
	OnReady func(protocol.Ready)
	// OnMessage is called for each job message (job_* and error frames with
	// a seq), exactly once per seq, in seq order.
	OnMessage func(protocol.Envelope)
	// OnEvent is called on connection lifecycle changes.
	OnEvent func(Event)
}

// Event is a connection lifecycle change.
type Event struct {
	// Kind is "connected" (ready received), "disconnected" (a connected
	// connection ended, also after the job finished) or "reconnecting"
	// (before each retry, failed handshakes included).
	Kind      string
	Attempt   int           // failed attempts since the last good connection
	Delay     time.Duration // for "reconnecting"
	CloseCode int           // for "disconnected", 0 when the connection just broke
	Reason    string
	Resumed   bool // for "connected"
	// Endpoint is the URL connected to ("connected", "disconnected") or
	// that the next attempt goes to ("reconnecting").
	Endpoint string
}

// Stats counts what a Watcher did.
type Stats struct {
	Connects   int // successful connections (ready received)
	Resumes    int // connections that resumed from a lastSeq
	Failures   int // failed connection attempts and broken connections
	Messages   int // job messages delivered to OnMessage
	Duplicates int // job messages dropped as already seen
	Pings      int // server pings answered
}

// Watcher watches one job until it finishes, reconnecting as needed.
type Watcher struct {
	cfg Config
	// endpoints is URL and URLs in this watcher's own random order; next
	// indexes the one the next attempt dials. Only Run touches next.
	endpoints []string
	next      int

	mu       sync.Mutex
	state    protocol.JobState
	lastSeq  int64
	haveSeq  bool
	token    string
	stats    Stats
	ready    protocol.Ready
	current  *websocket.Conn
	finished bool
}

// NewWatcher validates cfg and returns a Watcher.
func NewWatcher(cfg Config) (*Watcher, error) {
	endpoints := make([]string, 0, 1+len(cfg.URLs))
	for _, u := range append([]string{cfg.URL}, cfg.URLs...) {
		if u != "" && !slices.Contains(endpoints, u) {
			endpoints = append(endpoints, u)
		}
	}
	if len(endpoints) == 0 {
		return nil, errors.New("jobcast: Config.URL or URLs is required")
	}
	rand.Shuffle(len(endpoints), func(i, j int) { endpoints[i], endpoints[j] = endpoints[j], endpoints[i] })
	if cfg.Token == "" && cfg.TokenFunc == nil {
		return nil, errors.New("jobcast: Config.Token or TokenFunc is required")
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	if cfg.Dialer == nil {
		cfg.Dialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	}
	switch cfg.TokenIn {
	case "", "header", "query", "subprotocol", "hello":
	default:
		return nil, fmt.Errorf("jobcast: TokenIn %q: use header, query, subprotocol or hello", cfg.TokenIn)
	}
	return &Watcher{cfg: cfg, token: cfg.Token, endpoints: endpoints}, nil
}

// State returns the job state as last known: the ready snapshot with every
// later message applied.
func (w *Watcher) State() protocol.JobState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state
}

// LastSeq returns the highest seq delivered to OnMessage.
func (w *Watcher) LastSeq() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastSeq
}

// Stats returns counters of what the watcher did so far.
func (w *Watcher) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Ready returns the last ready payload.
func (w *Watcher) Ready() protocol.Ready {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ready
}

// Drop breaks the current connection without a close handshake, as a lost
// network would; the watcher reconnects and resumes. For tests and demos.
func (w *Watcher) Drop() {
	w.mu.Lock()
	c := w.current
	w.mu.Unlock()
	if c != nil {
		c.NetConn().Close()
	}
}

// closeInfo says how a connection ended.
type closeInfo struct {
	code   int
	reason string
	err    error // fatal: stop
	// retryAfter is a server-requested minimum delay.
	retryAfter time.Duration
	// refresh asks for a new token before the next attempt.
	refresh bool
	// good is set when the connection got as far as ready.
	good bool
}

// Run watches the job until it finishes (nil), ctx ends (ctx.Err()), or the
// server says retrying cannot help (ErrJobNotFound, ErrTokenInvalid, …).
func (w *Watcher) Run(ctx context.Context) error {
	failed := 0
	lastDisconnect := ""
	refreshedAfterReject := false
	w.mu.Lock()
	needToken := w.token == ""
	w.mu.Unlock()
	if needToken { // only a TokenFunc was configured: fetch the first token
		if err := w.fetchToken(ctx, "get token"); err != nil {
			return err
		}
	}
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		endpoint := w.endpoints[w.next]
		ci := w.connectOnce(ctx, endpoint, failed, lastDisconnect)
		if ci.good {
			failed = 0
			refreshedAfterReject = false
			// X-Last-Disconnect says why the last good connection ended,
			// not why a later attempt failed.
			lastDisconnect = ci.reason
			w.emit(Event{Kind: "disconnected", CloseCode: ci.code, Reason: ci.reason, Endpoint: endpoint})
		}
		w.mu.Lock()
		finished := w.finished
		w.mu.Unlock()
		if finished {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if ci.refresh {
			if w.cfg.TokenFunc == nil {
				if ci.err != nil {
					return ci.err
				}
				return ErrTokenExpired
			}
			if ci.err != nil { // rejected: refresh once, then give up
				if refreshedAfterReject {
					return ci.err
				}
				refreshedAfterReject = true
			}
			if err := w.fetchToken(ctx, "refresh token"); err != nil {
				return err
			}
		} else if ci.err != nil {
			return ci.err
		}
		if !ci.good {
			failed++
		}
		w.mu.Lock()
		w.stats.Failures++
		w.mu.Unlock()
		if w.cfg.MaxAttempts > 0 && failed >= w.cfg.MaxAttempts {
			return fmt.Errorf("%w after %d attempts: %s", ErrGaveUp, failed, ci.reason)
		}
		if !ci.refresh || ci.err != nil {
			// The node failed us (or is going away): try the next one. An
			// expired token says nothing about the node, so stay.
			w.next = (w.next + 1) % len(w.endpoints)
		}
		delay := w.backoff(failed)
		if ci.retryAfter > delay {
			delay = ci.retryAfter
		}
		w.emit(Event{Kind: "reconnecting", Attempt: failed, Delay: delay, Reason: ci.reason, Endpoint: w.endpoints[w.next]})
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// fetchToken asks TokenFunc for a token and keeps it for the next attempt.
func (w *Watcher) fetchToken(ctx context.Context, what string) error {
	tok, err := w.cfg.TokenFunc(ctx)
	if err != nil {
		return fmt.Errorf("jobcast: %s: %w", what, err)
	}
	w.mu.Lock()
	w.token = tok
	w.mu.Unlock()
	return nil
}

// backoff is capped exponential with equal jitter: half the step fixed, half
// random, so that a crowd of clients spreads out but none retries instantly.
func (w *Watcher) backoff(failed int) time.Duration {
	d := w.cfg.MinBackoff
	for i := 0; i < failed && d < w.cfg.MaxBackoff; i++ {
		d *= 2
	}
	if d > w.cfg.MaxBackoff {
		d = w.cfg.MaxBackoff
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

func (w *Watcher) emit(e Event) {
	if w.cfg.OnEvent != nil {
		w.cfg.OnEvent(e)
	}
}

// connectOnce dials, reads until the connection ends, and says how it ended.
func (w *Watcher) connectOnce(ctx context.Context, endpoint string, failed int, lastDisconnect string) closeInfo {
	w.mu.Lock()
	token, lastSeq, haveSeq := w.token, w.lastSeq, w.haveSeq
	w.mu.Unlock()

	u, err := url.Parse(endpoint)
	if err != nil {
		return closeInfo{err: fmt.Errorf("jobcast: URL: %w", err)}
	}
	q := u.Query()
	if w.cfg.JobID != "" {
		q.Set("jobId", w.cfg.JobID)
	}
	h := w.cfg.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	cc := w.cfg.Context
	setIf := func(k, v string) {
		if v != "" {
			h.Set(k, v)
		}
	}
	setIf("X-App-Version", cc.AppVersion)
	setIf("X-OS-Version", cc.OSVersion)
	setIf("X-Network-Type", cc.NetworkType)
	setIf("X-Device-Model", cc.DeviceModel)
	if haveSeq {
		h.Set("X-Last-Seq", strconv.FormatInt(lastSeq, 10))
		h.Set("X-Reconnect-Attempt", strconv.Itoa(failed))
		setIf("X-Last-Disconnect", lastDisconnect)
	}
	dialer := *w.cfg.Dialer
	switch w.cfg.TokenIn {
	case "", "header":
		h.Set("Authorization", "Bearer "+token)
	case "query":
		q.Set("token", token)
	case "subprotocol":
		dialer.Subprotocols = []string{protocol.Subprotocol, protocol.BearerSubprotocolPrefix + token}
	}
	u.RawQuery = q.Encode()

	ws, resp, err := dialer.DialContext(ctx, u.String(), h)
	if err != nil {
		return handshakeFailure(resp, err)
	}
	defer ws.Close()
	w.mu.Lock()
	w.current = ws
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.current = nil
		w.mu.Unlock()
	}()
	stop := context.AfterFunc(ctx, func() {
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "client done"), time.Now().Add(time.Second))
		ws.NetConn().Close()
	})
	defer stop()

	if w.cfg.TokenIn == "hello" {
		hello := protocol.Hello{
			Token: token, AppVersion: cc.AppVersion, OSVersion: cc.OSVersion,
			NetworkType: cc.NetworkType, DeviceModel: cc.DeviceModel,
		}
		if haveSeq {
			hello.LastSeq = &lastSeq
			hello.ReconnectAttempt = failed
			hello.LastDisconnect = lastDisconnect
		}
		if err := writeFrame(ws, protocol.TypeHello, &hello); err != nil {
			return closeInfo{reason: "write failed"}
		}
	}
	return w.readLoop(ws, endpoint)
}

func writeFrame(ws *websocket.Conn, typ string, payload any) error {
	raw, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	data, err := json.Marshal(&protocol.Envelope{V: protocol.Version, Type: typ, TS: time.Now().UnixMilli(), Payload: raw})
	if err != nil {
		return err
	}
	_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return ws.WriteMessage(websocket.TextMessage, data)
}

func handshakeFailure(resp *http.Response, err error) closeInfo {
	if resp == nil {
		return closeInfo{reason: "dial: " + err.Error()}
	}
	defer resp.Body.Close()
	var body [4096]byte
	n, _ := resp.Body.Read(body[:])
	ae := apiError(resp, body[:n])
	ci := closeInfo{reason: fmt.Sprintf("handshake %d %s", ae.Status, ae.Code), retryAfter: ae.RetryAfter}
	switch {
	case ae.Code == protocol.ErrTokenExpired:
		ci.refresh = true
	case ae.Code == protocol.ErrTokenInvalid:
		ci.refresh, ci.err = true, ErrTokenInvalid
	case ae.Status == http.StatusNotFound && ae.Code == protocol.ErrJobNotFound:
		ci.err = ErrJobNotFound
	case ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusRequestTimeout &&
		ae.Status != http.StatusTooEarly && ae.Status != http.StatusTooManyRequests:
		// A refused origin, a wrong path, a malformed request: the same
		// request will be refused again.
		ci.err = fmt.Errorf("jobcast: handshake rejected: %w", ae)
	}
	return ci
}

// deadServerMargin is added to heartbeat interval plus pong timeout before
// a silent server counts as dead: room for one round trip of a slow network.
const deadServerMargin = time.Second

// readLoop handles frames until the connection ends.
func (w *Watcher) readLoop(ws *websocket.Conn, endpoint string) closeInfo {
	ci := closeInfo{}
	deadline := 60 * time.Second // until ready says otherwise
	var (
		in  messageBuffer
		ids names
	)
	for {
		_ = ws.SetReadDeadline(time.Now().Add(deadline))
		data, err := in.read(ws)
		if err != nil {
			return w.classifyClose(err, ci)
		}
		var frame protocol.Envelope
		if ids.decode(data, &frame) != nil {
			continue // tolerate what we cannot read; the server is newer
		}
		env := &frame
		switch env.Type {
		case protocol.TypeReady:
			var r protocol.Ready
			if json.Unmarshal(env.Payload, &r) != nil {
				continue
			}
			// A server is dead when neither a ping nor anything else
			// arrives for a heartbeat plus the pong timeout.
			deadline = time.Duration(r.HeartbeatIntervalMs+r.PongTimeoutMs)*time.Millisecond + deadServerMargin
			ci.good = true
			w.mu.Lock()
			w.ready = r
			if r.Resumed && r.LastSeq < w.lastSeq {
				// The server knows less than we saw (its store was
				// restored): it is the authority, so take its state and
				// accept its seq numbers again.
				w.lastSeq = r.LastSeq
				w.state = r.State
			}
			if r.State.Seq >= w.state.Seq {
				w.state = r.State
			}
			w.stats.Connects++
			if r.Resumed {
				w.stats.Resumes++
			}
			w.haveSeq = true
			w.mu.Unlock()
			if w.cfg.OnReady != nil {
				w.cfg.OnReady(r)
			}
			w.emit(Event{Kind: "connected", Resumed: r.Resumed, Endpoint: endpoint})
		case protocol.TypePing:
			var p protocol.Ping
			_ = json.Unmarshal(env.Payload, &p)
			if err := writeFrame(ws, protocol.TypePong, &protocol.Pong{ServerTime: p.ServerTime}); err != nil {
				return w.classifyClose(err, ci)
			}
			w.mu.Lock()
			w.stats.Pings++
			w.mu.Unlock()
		case protocol.TypePong:
		default:
			if env.Seq == 0 {
				// A connection-level error (protocol, auth): the close
				// frame that follows says what to do.
				continue
			}
			w.onJobMessage(env)
		}
	}
}

func (w *Watcher) onJobMessage(env *protocol.Envelope) {
	w.mu.Lock()
	if env.Seq <= w.lastSeq {
		w.stats.Duplicates++
		w.mu.Unlock()
		return
	}
	w.lastSeq = env.Seq
	w.haveSeq = true
	w.stats.Messages++
	applyToState(&w.state, env)
	if protocol.IsTerminal(env.Type) {
		w.finished = true
	}
	w.mu.Unlock()
	if w.cfg.OnMessage != nil {
		// The payload is in the connection's read buffer, which the next
		// frame overwrites: the callback gets its own copy.
		m := *env
		m.Payload = bytes.Clone(env.Payload)
		w.cfg.OnMessage(m)
	}
}

// messageBuffer reads whole messages into one buffer that a connection
// reuses. gorilla's ReadMessage allocates a new slice for each message (512
// bytes at least), which at tens of thousands of frames a second was most
// of a watcher's garbage, and its collections the load generator's
// latency tail.
type messageBuffer struct{ buf []byte }

// maxKeptBuffer bounds what a connection keeps between messages: a large
// frame (a ready with a big result) is read, then its buffer dropped.
const maxKeptBuffer = 64 << 10

// read returns the next message; it is valid until the next call.
func (m *messageBuffer) read(ws *websocket.Conn) ([]byte, error) {
	if cap(m.buf) > maxKeptBuffer {
		m.buf = nil
	}
	_, r, err := ws.NextReader()
	if err != nil {
		return nil, err
	}
	b := m.buf[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			m.buf = b
			return b, nil
		}
		if err != nil {
			m.buf = b
			return nil, err
		}
	}
}

// applyToState folds a job message into the state, when it is newer.
func applyToState(s *protocol.JobState, env *protocol.Envelope) {
	if env.Seq <= s.Seq {
		return
	}
	s.Seq = env.Seq
	if s.JobID == "" {
		s.JobID, s.Pipeline = env.JobID, env.Pipeline
	}
	s.UpdatedAt = time.UnixMilli(env.TS).UTC()
	switch env.Type {
	case protocol.TypeJobStarted:
		var p protocol.Started
		_ = json.Unmarshal(env.Payload, &p)
		if p.TotalCount > 0 {
			s.TotalCount = p.TotalCount
		}
		s.Status = protocol.StatusRunning
	case protocol.TypeJobProgress:
		var p protocol.Progress
		decodeProgress(env.Payload, &p)
		s.ProcessedCount = p.ProcessedCount
		if p.TotalCount > 0 {
			s.TotalCount = p.TotalCount
		}
		s.Status = protocol.StatusRunning
	case protocol.TypeJobCompleted:
		var p protocol.Completed
		_ = json.Unmarshal(env.Payload, &p)
		s.SuccessCount, s.FailureCount = p.SuccessCount, p.FailureCount
		if n := p.SuccessCount + p.FailureCount; n > s.ProcessedCount {
			s.ProcessedCount = n
		}
		if len(p.Result) > 0 {
			s.Result = p.Result
		}
		s.Status = protocol.StatusCompleted
	case protocol.TypeJobFailed, protocol.TypeError:
		var p protocol.ErrorPayload
		_ = json.Unmarshal(env.Payload, &p)
		s.LastError = &p
		if env.Type == protocol.TypeJobFailed {
			s.Status = protocol.StatusFailed
		}
	}
}

// classifyClose maps how a connection ended onto what to do next.
func (w *Watcher) classifyClose(err error, ci closeInfo) closeInfo {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		ci.code = ce.Code
		ci.reason = fmt.Sprintf("close %d", ce.Code)
		if ce.Text != "" {
			ci.reason += ": " + ce.Text
		}
		switch ce.Code {
		case protocol.CloseTokenExpired:
			ci.refresh = true
		case protocol.CloseTokenInvalid:
			ci.refresh, ci.err = true, ErrTokenInvalid
		case protocol.CloseJobNotFound:
			ci.err = ErrJobNotFound
		case protocol.CloseRateLimited:
			ci.retryAfter = 5 * time.Second
		}
		return ci
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		ci.reason = "heartbeat_timeout"
		return ci
	}
	ci.reason = "connection_lost"
	return ci
}
