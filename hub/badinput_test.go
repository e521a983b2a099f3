package hub_test

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/protocol"
)

func TestBadFrames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	tests := []struct {
		name  string
		frame string
	}{
		{"malformed JSON", `{"v":2,"type":`},
		{"not an object", `[1,2,3]`},
		{"trailing data", `{"v":2,"type":"ping"} {}`},
		{"unknown type", `{"v":2,"type":"subscribe","payload":{}}`},
		{"server-only type", `{"v":2,"type":"job_completed","payload":{}}`},
		{"missing type", `{"v":2}`},
		{"wrong version", `{"v":3,"type":"ping"}`},
		{"ping payload not an object", `{"v":2,"type":"ping","payload":"x"}`},
		{"hello with bad lastSeq", `{"v":2,"type":"hello","payload":{"lastSeq":-1}}`},
		{"hello with wrong field types", `{"v":2,"type":"hello","payload":{"appVersion":7}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tk := e.createJob(t)
			c, _ := e.open(t, tk)
			c.sendRaw(tt.frame)
			f := c.expect(protocol.TypeError)
			if _, hasSeq := f.raw["seq"]; hasSeq {
				t.Errorf("protocol error frame carries a seq: %s", f.data)
			}
			p := errorPayload(t, f)
			if p.Code != protocol.ErrProtocol || p.Message == "" || len(p.Details) == 0 {
				t.Errorf("error payload = %+v (details %s)", p, p.Details)
			}
			// The connection stays and still gets job messages.
			c.expectNothing()
			e.send(t, tk.JobID, started())
			c.expect(protocol.TypeJobStarted)
		})
	}
}

func TestRepeatedViolationsClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{MaxProtocolViolation: 3})
	tk := e.createJob(t)
	c, _ := e.open(t, tk)
	c.sendRaw("nope")
	c.expectError(protocol.ErrProtocol)
	c.sendRaw(`{"v":2,"type":"nope"}`)
	c.expectError(protocol.ErrProtocol)
	c.expectNothing() // two are tolerated
	c.sendRaw("{")
	c.expectError(protocol.ErrProtocol)
	c.expectClose(protocol.ClosePolicyViolation)
}

func TestFrameSizeLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	// frameOf pads a ping to exactly n bytes.
	frameOf := func(n int) string {
		head, tail := `{"v":2,"type":"ping","payload":{"pad":"`, `"}}`
		return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
	}
	t.Run("64 KiB is allowed", func(t *testing.T) {
		t.Parallel()
		tk := e.createJob(t)
		c, _ := e.open(t, tk)
		c.sendRaw(frameOf(protocol.MaxFrameBytes))
		c.expect(protocol.TypePong)
	})
	t.Run("one byte more closes with 1009", func(t *testing.T) {
		t.Parallel()
		tk := e.createJob(t)
		c, _ := e.open(t, tk)
		c.sendRaw(frameOf(protocol.MaxFrameBytes + 1))
		c.expectClose(protocol.CloseMessageTooBig)
	})
}

// A client that stops reading is disconnected once its queue is full, and
// the job's other clients go on receiving everything.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	const batch = 32
	e := newEnv(t, jobcast.Config{SendQueueLen: 2 * batch})
	tk := e.createJob(t)
	good, _ := e.open(t, tk)

	slowConn, _, err := dialer().DialContext(ctxT(t), e.wsURL(url.Values{"jobId": {tk.JobID}}), bearer(tk.Token))
	if err != nil {
		t.Fatal(err)
	}
	defer slowConn.Close()
	// It never reads again.

	// Large non-progress messages (not coalesced), a batch at a time; the
	// good client reads each batch before the next is sent.
	details := map[string]any{"blob": strings.Repeat("d", 12<<10)}
	var seq int64
	sendBatch := func() {
		t.Helper()
		evs := make([]protocol.ProducerEvent, batch)
		for i := range evs {
			evs[i] = client.NewEvent(protocol.EventError, map[string]any{"code": "E_BULK", "details": details})
		}
		e.send(t, tk.JobID, evs...)
		for range batch {
			// Decoded lightly: these frames are large.
			_ = good.c.SetReadDeadline(deadline())
			_, data, err := good.c.ReadMessage()
			if err != nil {
				t.Fatalf("good client: %v", err)
			}
			var f struct {
				Type string `json:"type"`
				Seq  int64  `json:"seq"`
			}
			if err := json.Unmarshal(data, &f); err != nil {
				t.Fatal(err)
			}
			seq++
			if f.Type != protocol.TypeError || f.Seq != seq {
				t.Fatalf("good client got %s seq %d, want error seq %d", f.Type, f.Seq, seq)
			}
		}
	}
	slowGone := func() bool { return len(e.connections(t, tk.JobID)) == 1 }
	for i := 0; !slowGone(); i++ {
		if i == 500 {
			t.Fatalf("slow client still connected after %d messages", seq)
		}
		sendBatch()
	}
	t.Logf("slow client dropped after %d messages", seq)
	// The good client keeps receiving, through the end of the job.
	sendBatch()
	e.send(t, tk.JobID, completed())
	good.expect(protocol.TypeJobCompleted)
	good.expectClose(protocol.CloseJobFinished)

	// The slow client sees the frames it had buffered, then the end.
	_ = slowConn.SetReadDeadline(deadline())
	for {
		_, data, err := slowConn.ReadMessage()
		if err != nil {
			if ce, ok := err.(*websocket.CloseError); ok && ce.Code != protocol.ClosePolicyViolation && ce.Code != websocket.CloseAbnormalClosure {
				t.Errorf("slow client closed with %d, want 1008 or a broken connection", ce.Code)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("slow client connection still open: %v", err)
			}
			break
		}
		var env protocol.Envelope
		if json.Unmarshal(data, &env) != nil || env.Type == protocol.TypeJobCompleted {
			t.Fatalf("slow client got %.80s after it was dropped", data)
		}
	}
}

func TestShutdownSends1001(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	tk := e.createJob(t)
	a, _ := e.open(t, tk)
	b, _ := e.open(t, e.createJob(t))
	waiting := dial(t, e.wsURL(url.Values{"jobId": {tk.JobID}}), nil) // awaiting its hello
	e.waitTimers(t, 2)                                                // the heartbeat scheduler and a hello timeout
	done := make(chan struct{})
	go func() {
		e.srv.Close()
		close(done)
	}()
	for _, c := range []*ws{a, b, waiting} {
		c.expectClose(protocol.CloseGoingAway)
	}
	<-done
	if n := e.srv.Hub.ConnCount(); n != 0 {
		t.Errorf("%d connections left after shutdown", n)
	}
	// New connections are refused.
	if _, _, err := dialRaw(t, e.wsURL(url.Values{"jobId": {tk.JobID}}), bearer(tk.Token)); err == nil {
		t.Error("connected after shutdown")
	}
}

// A client flooding the server with frames is closed with 4029.
func TestClientFrameRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	tk := e.createJob(t)
	c, _ := e.open(t, tk)
	// 50 frames a second are fine (the manual clock stands still)...
	for range 49 {
		c.send(protocol.TypePong, protocol.Pong{ServerTime: 1})
	}
	c.expectNothing() // the 50th frame: its ping is answered
	// ...the 51st is not.
	c.send(protocol.TypePong, protocol.Pong{ServerTime: 1})
	c.expectError(protocol.ErrRateLimited)
	c.expectClose(protocol.CloseRateLimited)
}

// While the hub drains, new handshakes are refused with 503 and Retry-After.
func TestHandshakeDuringShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	tk := e.createJob(t)
	c, _ := e.open(t, tk)
	done := make(chan error, 1)
	go func() { done <- e.srv.Hub.Shutdown(ctxT(t)) }()
	c.expectClose(protocol.CloseGoingAway)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	_, resp, err := dialRaw(t, e.wsURL(url.Values{"jobId": {tk.JobID}}), bearer(tk.Token))
	if err == nil || resp == nil {
		t.Fatalf("handshake during shutdown: %v", err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("status %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code, _ := httpError(t, resp); code != protocol.ErrUnavailable {
		t.Errorf("code = %s", code)
	}
}
