package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
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

// waitTimeout bounds every wait on the network. Tests never sleep for
// timing; this only turns a hang into a failure.
const waitTimeout = 10 * time.Second

// epoch is where manual clocks start.
var epoch = time.Date(2025, 11, 26, 12, 0, 0, 0, time.UTC)

// env is one test server, with its manual clock when it has one.
type env struct {
	srv   *jobcasttest.Server
	clock *clocktest.Clock
}

// newEnv starts a server with cfg on a manual clock.
func newEnv(t *testing.T, cfg jobcast.Config) *env {
	t.Helper()
	clock := clocktest.New(epoch)
	return &env{srv: jobcasttest.Start(t, jobcasttest.Options{Config: cfg, Clock: clock}), clock: clock}
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// createJob creates a job and returns its ticket.
func (e *env) createJob(t *testing.T) *client.Ticket {
	t.Helper()
	return e.srv.CreateJob(t)
}

// send posts events as one batch.
func (e *env) send(t *testing.T, jobID string, evs ...protocol.ProducerEvent) {
	t.Helper()
	e.srv.Send(t, jobID, evs...)
}

func started() protocol.ProducerEvent { return jobcasttest.Started() }

func progress(n int) protocol.ProducerEvent { return jobcasttest.Progress(n) }

func errorEv(code string) protocol.ProducerEvent { return jobcasttest.ErrorEvent(code) }

func completed() protocol.ProducerEvent { return jobcasttest.Completed() }

func failed(code string) protocol.ProducerEvent { return jobcasttest.Failed(code) }

// wsURL is the progress endpoint with query parameters.
func (e *env) wsURL(q url.Values) string {
	if len(q) == 0 {
		return e.srv.WSURL
	}
	return e.srv.WSURL + "?" + q.Encode()
}

// connections lists the server's live connections of job through the admin
// API.
func (e *env) connections(t *testing.T, jobID string) []hub.ConnInfo {
	t.Helper()
	return e.srv.Connections(t, jobID)
}

// connection returns the only live connection of job.
func (e *env) connection(t *testing.T, jobID string) hub.ConnInfo {
	t.Helper()
	cs := e.connections(t, jobID)
	if len(cs) != 1 {
		t.Fatalf("job %s has %d connections, want 1: %+v", jobID, len(cs), cs)
	}
	return cs[0]
}

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

// waitTimers waits until the manual clock has at least n armed timers, so that
// an Advance is sure to find the timer the server is about to arm.
func (e *env) waitTimers(t *testing.T, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d armed timers", n), func() bool { return e.clock.Pending() >= n })
}

// ws is a raw WebSocket client speaking the jobcast protocol.
type ws struct {
	t    *testing.T
	c    *websocket.Conn
	resp *http.Response
	ping atomic.Int64
}

// frame is one decoded server frame and its raw fields.
type frame struct {
	protocol.Envelope
	raw    map[string]json.RawMessage
	closed *websocket.CloseError // set for the close frame
	data   []byte
}

// dialer returns a dialer offering subprotocols.
func dialer(subprotocols ...string) *websocket.Dialer {
	return &websocket.Dialer{HandshakeTimeout: waitTimeout, Subprotocols: subprotocols}
}

// dialRaw attempts a handshake and returns its outcome.
func dialRaw(t *testing.T, u string, h http.Header, subprotocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	c, resp, err := dialer(subprotocols...).DialContext(ctxT(t), u, h)
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

// dial opens a connection that must succeed.
func dial(t *testing.T, u string, h http.Header, subprotocols ...string) *ws {
	t.Helper()
	c, resp, err := dialRaw(t, u, h, subprotocols...)
	if err != nil {
		status, body := 0, ""
		if resp != nil {
			status = resp.StatusCode
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
		}
		t.Fatalf("dial %s: %v (status %d %s)", u, err, status, body)
	}
	return &ws{t: t, c: c, resp: resp}
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// open connects to job with its token in the Authorization header and reads
// the ready frame.
func (e *env) open(t *testing.T, tk *client.Ticket) (*ws, protocol.Ready) {
	t.Helper()
	c := dial(t, e.wsURL(url.Values{"jobId": {tk.JobID}}), bearer(tk.Token))
	return c, c.ready()
}

// next reads one frame, which may be the close frame.
func (c *ws) next() frame {
	c.t.Helper()
	_ = c.c.SetReadDeadline(time.Now().Add(waitTimeout))
	_, data, err := c.c.ReadMessage()
	if err != nil {
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return frame{closed: ce}
		}
		c.t.Fatalf("read frame: %v", err)
	}
	var f frame
	f.data = data
	if err := json.Unmarshal(data, &f.Envelope); err != nil {
		c.t.Fatalf("frame is not an envelope: %v: %s", err, data)
	}
	if err := json.Unmarshal(data, &f.raw); err != nil {
		c.t.Fatalf("frame is not an object: %v: %s", err, data)
	}
	return f
}

// frame reads a frame that must be a data frame of type typ.
func (c *ws) expect(typ string) frame {
	c.t.Helper()
	f := c.next()
	if f.closed != nil {
		c.t.Fatalf("got close %d %q, want a %s frame", f.closed.Code, f.closed.Text, typ)
	}
	if f.Type != typ {
		c.t.Fatalf("got %s frame, want %s: %s", f.Type, typ, f.data)
	}
	return f
}

// ready reads the ready frame.
func (c *ws) ready() protocol.Ready {
	c.t.Helper()
	f := c.expect(protocol.TypeReady)
	var r protocol.Ready
	if err := json.Unmarshal(f.Payload, &r); err != nil {
		c.t.Fatalf("ready payload: %v", err)
	}
	return r
}

// errorPayload decodes an error frame.
func errorPayload(t *testing.T, f frame) protocol.ErrorPayload {
	t.Helper()
	var p protocol.ErrorPayload
	if err := json.Unmarshal(f.Payload, &p); err != nil {
		t.Fatalf("error payload: %v: %s", err, f.data)
	}
	return p
}

// expectError reads an error frame with code.
func (c *ws) expectError(code string) protocol.ErrorPayload {
	c.t.Helper()
	p := errorPayload(c.t, c.expect(protocol.TypeError))
	if p.Code != code {
		c.t.Fatalf("error code = %s (%s), want %s", p.Code, p.Message, code)
	}
	if p.Message == "" {
		c.t.Fatalf("error %s has no message", code)
	}
	return p
}

// expectClose reads the close frame, which must carry code.
func (c *ws) expectClose(code int) {
	c.t.Helper()
	f := c.next()
	if f.closed == nil {
		c.t.Fatalf("got %s frame, want close %d: %s", f.Type, code, f.data)
	}
	if f.closed.Code != code {
		c.t.Fatalf("close code = %d (%q), want %d", f.closed.Code, f.closed.Text, code)
	}
}

// sendRaw writes a text frame.
func (c *ws) sendRaw(data string) {
	c.t.Helper()
	_ = c.c.SetWriteDeadline(time.Now().Add(waitTimeout))
	if err := c.c.WriteMessage(websocket.TextMessage, []byte(data)); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
}

// send writes an enveloped frame.
func (c *ws) send(typ string, payload any) {
	c.t.Helper()
	raw, err := json.Marshal(payload)
	if err != nil {
		c.t.Fatal(err)
	}
	data, err := json.Marshal(&protocol.Envelope{V: protocol.Version, Type: typ, TS: time.Now().UnixMilli(), Payload: raw})
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(string(data))
}

// barrier sends a ping and returns every frame the server sent before its
// pong. Everything the server queued before it read the ping comes first, so
// the result is exactly what was sent up to now.
func (c *ws) barrier() []frame {
	c.t.Helper()
	id := c.ping.Add(1) + 1_000_000
	c.send(protocol.TypePing, protocol.Ping{ClientTime: id})
	var out []frame
	for {
		f := c.next()
		if f.closed != nil {
			c.t.Fatalf("closed %d %q while waiting for pong; frames before: %v", f.closed.Code, f.closed.Text, types(out))
		}
		if f.Type == protocol.TypePong {
			var p protocol.Pong
			if err := json.Unmarshal(f.Payload, &p); err != nil {
				c.t.Fatalf("pong payload: %v", err)
			}
			if p.ClientTime == id {
				return out
			}
		}
		out = append(out, f)
	}
}

// expectNothing asserts that the server sent nothing since the last read.
func (c *ws) expectNothing() {
	c.t.Helper()
	if fs := c.barrier(); len(fs) != 0 {
		c.t.Fatalf("unexpected frames: %v", types(fs))
	}
}

// types lists frame types with their seq, for messages.
func types(fs []frame) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = fmt.Sprintf("%s#%d", f.Type, f.Seq)
	}
	return out
}

// seqs lists the seq of each frame.
func seqs(fs []frame) []int64 {
	out := make([]int64, len(fs))
	for i, f := range fs {
		out[i] = f.Seq
	}
	return out
}

// processed returns processedCount of a job_progress frame.
func processed(t *testing.T, f frame) int64 {
	t.Helper()
	if f.Type != protocol.TypeJobProgress {
		t.Fatalf("got %s, want job_progress", f.Type)
	}
	var p protocol.Progress
	if err := json.Unmarshal(f.Payload, &p); err != nil {
		t.Fatal(err)
	}
	return p.ProcessedCount
}

// httpError decodes a failed handshake's JSON error body.
func httpError(t *testing.T, resp *http.Response) (code, message string) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type = %q, want JSON", ct)
	}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &body); err != nil {
		t.Fatalf("error body %q: %v", data, err)
	}
	if body.Error.Code == "" || body.Error.Message == "" {
		t.Fatalf("error body lacks code or message: %s", data)
	}
	return body.Error.Code, body.Error.Message
}

// deadline is a read or write deadline that only turns a hang into a failure.
func deadline() time.Time { return time.Now().Add(waitTimeout) }

// untilClose reads frames until the server closes the connection and returns
// them with the close code.
func (c *ws) untilClose() ([]frame, int) {
	c.t.Helper()
	var out []frame
	for {
		f := c.next()
		if f.closed != nil {
			return out, f.closed.Code
		}
		out = append(out, f)
	}
}
