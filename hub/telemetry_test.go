package hub_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/internal/jobcasttest"
	"github.com/jobcast/jobcast/protocol"
)

// newTelemetryEnv is newEnv with a recorder that keeps every event.
func newTelemetryEnv(t *testing.T, cfg jobcast.Config) (*env, *jobcasttest.Events) {
	t.Helper()
	clock := clocktest.New(epoch)
	events := &jobcasttest.Events{}
	srv := jobcasttest.Start(t, jobcasttest.Options{Config: cfg, Clock: clock, Recorder: events})
	return &env{srv: srv, clock: clock}, events
}

func mobileHeaders(token string) http.Header {
	h := bearer(token)
	h.Set("X-App-Version", "3.4.0")
	h.Set("X-OS-Version", "iOS 18.1")
	h.Set("X-Network-Type", "cellular")
	h.Set("X-Device-Model", "iPhone15,3")
	return h
}

func checkContext(t *testing.T, e jobcast.Event, jobID string) {
	t.Helper()
	if e.JobID != jobID || e.Pipeline != "csv_import" || e.Node != "test" || e.AppVersion != "3.4.0" ||
		e.OSVersion != "iOS 18.1" || e.NetworkType != "cellular" || e.DeviceModel != "iPhone15,3" || e.ConnID == "" {
		t.Errorf("%s event lacks the connection's context: %+v", e.Event, e)
	}
}

// One connection's life, from connect to the job's end, records connected,
// heartbeat, error, disconnected with its counters, and the job's summary.
func TestTelemetryConnectionLifecycle(t *testing.T) {
	t.Parallel()
	e, events := newTelemetryEnv(t, jobcast.Config{Throttle: time.Second})
	tk := e.createJob(t)
	c := dial(t, e.wsURL(url.Values{"jobId": {tk.JobID}}), mobileHeaders(tk.Token))
	c.ready()
	connected := events.Wait(t, jobcast.EventConnected, 1)
	checkContext(t, connected[0], tk.JobID)
	if !connected[0].TS.Equal(epoch) || connected[0].ReconnectCount != 0 {
		t.Errorf("connected = %+v", connected[0])
	}

	// Progress: the first goes out, the next three coalesce into one.
	e.send(t, tk.JobID, started(), progress(1))
	c.expect(protocol.TypeJobStarted)
	c.expect(protocol.TypeJobProgress)
	e.send(t, tk.JobID, progress(2), progress(3), progress(4))
	c.barrier()
	e.clock.Advance(time.Second)
	c.expect(protocol.TypeJobProgress)

	// A heartbeat with a 25 ms round trip.
	e.clock.Advance(30*time.Second - time.Second)
	st := c.expectPing()
	e.clock.Advance(25 * time.Millisecond)
	c.send(protocol.TypePong, protocol.Pong{ServerTime: st})
	hb := events.Wait(t, jobcast.EventHeartbeat, 1)[0]
	checkContext(t, hb, tk.JobID)
	if hb.RTTMs != 25 || hb.SampleInterval != 1 {
		t.Errorf("heartbeat = %+v, want rtt 25 ms, sample interval 1", hb)
	}

	// A protocol violation is an error event of the connection.
	c.sendRaw(`{"type":"bogus"}`)
	c.expectError(protocol.ErrProtocol)
	perr := events.Wait(t, jobcast.EventError, 1)[0]
	checkContext(t, perr, tk.JobID)
	if perr.ErrorCode != protocol.ErrProtocol || perr.Retryable {
		t.Errorf("protocol error event = %+v", perr)
	}

	// A producer error and the end of the job.
	e.send(t, tk.JobID, producerError("E_GEMINI_TIMEOUT", "gemini"), completed())
	_, code := c.untilClose()
	if code != protocol.CloseJobFinished {
		t.Fatalf("close %d", code)
	}
	errs := events.Wait(t, jobcast.EventError, 2)
	if pe := errs[1]; pe.ErrorCode != "E_GEMINI_TIMEOUT" || pe.Provider != "gemini" || !pe.Retryable || pe.JobID != tk.JobID || pe.Pipeline != "csv_import" {
		t.Errorf("producer error event = %+v", pe)
	}
	done := events.Wait(t, jobcast.EventJobCompleted, 1)[0]
	if done.SuccessCount != 100 || done.TotalCount != 100 || done.MessagesSent != 7 || done.ThrottledCount != 2 {
		t.Errorf("job_completed = %+v, want success 100, total 100, 7 messages, 2 throttled", done)
	}
	if st := events.Wait(t, jobcast.EventJobStarted, 1)[0]; st.TotalCount != 100 || st.JobID != tk.JobID {
		t.Errorf("job_started = %+v", st)
	}

	d := events.Wait(t, jobcast.EventDisconnected, 1)[0]
	checkContext(t, d, tk.JobID)
	// Sent: ready, started, progress 1, the barrier's pong, progress 4,
	// ping, error (protocol), error (producer), completed = 9; progress
	// frames sent 2, coalesced 2. Received: the barrier's ping, the pong,
	// the bogus frame = 3.
	if d.CloseCode != protocol.CloseJobFinished || d.MessagesSent != 9 || d.ProgressSent != 2 || d.ThrottledCount != 2 ||
		d.MessagesReceived != 3 || d.BytesSent == 0 || d.DurationMs != (30*time.Second+25*time.Millisecond).Milliseconds() {
		t.Errorf("disconnected = %+v", d)
	}
}

func producerError(code, provider string) protocol.ProducerEvent {
	ev := errorEv(code)
	ev.Payload = []byte(`{"code":"` + code + `","retryable":true,"details":{"provider":"` + provider + `"}}`)
	return ev
}

// A client that says it is reconnecting is counted as reconnected, with its
// attempt count and the reason of its last disconnect.
func TestTelemetryReconnect(t *testing.T) {
	t.Parallel()
	e, events := newTelemetryEnv(t, jobcast.Config{})
	tk := e.createJob(t)
	h := mobileHeaders(tk.Token)
	h.Set("X-Reconnect-Attempt", "3")
	h.Set("X-Last-Disconnect", "heartbeat_timeout")
	h.Set("X-Last-Seq", "0")
	c := dial(t, e.wsURL(url.Values{"jobId": {tk.JobID}}), h)
	c.ready()
	r := events.Wait(t, jobcast.EventReconnected, 1)[0]
	checkContext(t, r, tk.JobID)
	if r.ReconnectCount != 3 || r.Reason != "heartbeat_timeout" {
		t.Errorf("reconnected = %+v", r)
	}
	if n := len(events.Named(jobcast.EventConnected)); n != 0 {
		t.Errorf("a reconnect was also counted as %d connected", n)
	}
}

// Failed handshakes record connect_failed with the reason and whatever
// context the client sent.
func TestTelemetryConnectFailed(t *testing.T) {
	t.Parallel()
	e, events := newTelemetryEnv(t, jobcast.Config{TokenTTL: time.Minute})
	tk := e.createJob(t)
	other := e.createJob(t)
	e.clock.Advance(2 * time.Minute) // tk's token is expired now

	expired := mobileHeaders(tk.Token)
	expired.Set("X-Reconnect-Attempt", "2")
	for _, tc := range []struct {
		name   string
		url    string
		header http.Header
		reason string
		code   string
	}{
		{"expired token", e.wsURL(url.Values{"jobId": {tk.JobID}}), expired, jobcast.ReasonTokenExpired, protocol.ErrTokenExpired},
		{"garbage token", e.wsURL(url.Values{"jobId": {tk.JobID}}), mobileHeaders("garbage"), jobcast.ReasonTokenInvalid, protocol.ErrTokenInvalid},
		{"unknown job", e.wsURL(url.Values{"jobId": {"nope"}}), mobileHeaders(issue(t, e, "nope")), jobcast.ReasonJobNotFound, protocol.ErrJobNotFound},
		{"no token", e.wsURL(url.Values{}), mobileHeaders(""), jobcast.ReasonBadRequest, protocol.ErrBadRequest},
		{"another job's token", e.wsURL(url.Values{"jobId": {tk.JobID}}), mobileHeaders(issue(t, e, other.JobID)), jobcast.ReasonTokenInvalid, protocol.ErrTokenInvalid},
	} {
		before := len(events.Named(jobcast.EventConnectFailed))
		_, resp, err := dialRaw(t, tc.url, tc.header)
		if err == nil {
			t.Fatalf("%s: handshake succeeded", tc.name)
		}
		resp.Body.Close()
		got := events.Wait(t, jobcast.EventConnectFailed, before+1)[before]
		if got.Reason != tc.reason || got.ErrorCode != tc.code || got.NetworkType != "cellular" || got.AppVersion != "3.4.0" {
			t.Errorf("%s: connect_failed = %+v, want reason %s code %s", tc.name, got, tc.reason, tc.code)
		}
		if tc.name == "expired token" && (got.JobID != tk.JobID || got.ReconnectCount != 2 || !got.Retryable) {
			t.Errorf("expired token: connect_failed = %+v", got)
		}
	}
	if n := len(events.Named(jobcast.EventConnected)) + len(events.Named(jobcast.EventDisconnected)); n != 0 {
		t.Errorf("failed handshakes recorded %d connection events", n)
	}
}

func issue(t *testing.T, e *env, jobID string) string {
	t.Helper()
	tok, _, err := e.srv.Tokens.Issue(jobID)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// With a heartbeat sample interval of 3, the 1st, 4th, 7th… heartbeat is
// recorded, each standing for 3.
func TestTelemetryHeartbeatSampling(t *testing.T) {
	t.Parallel()
	const interval = 30 * time.Second
	e, events := newTelemetryEnv(t, jobcast.Config{HeartbeatInterval: interval, HeartbeatSampleInterval: 3})
	tk := e.createJob(t)
	c, _ := e.open(t, tk)
	for i := 0; i < 7; i++ {
		e.clock.Advance(interval)
		st := c.expectPing()
		c.send(protocol.TypePong, protocol.Pong{ServerTime: st})
		c.expectNothing()
	}
	hbs := events.Named(jobcast.EventHeartbeat)
	if len(hbs) != 3 {
		t.Fatalf("recorded %d heartbeats of 7, want 3", len(hbs))
	}
	for _, hb := range hbs {
		if hb.SampleInterval != 3 {
			t.Errorf("heartbeat sample interval %d, want 3", hb.SampleInterval)
		}
	}
}

// A failed job records an error and job_failed with the failure's code and
// the job's final stats.
func TestTelemetryJobFailed(t *testing.T) {
	t.Parallel()
	e, events := newTelemetryEnv(t, jobcast.Config{})
	tk := e.createJob(t)
	e.clock.Advance(90 * time.Second)
	e.send(t, tk.JobID, progress(40), failed("E_ENRICHMENT_FAILED"))
	f := events.Wait(t, jobcast.EventJobFailed, 1)[0]
	if f.ErrorCode != "E_ENRICHMENT_FAILED" || f.DurationMs != 90000 || f.TotalCount != 100 || f.MessagesSent != 2 || f.JobID != tk.JobID {
		t.Errorf("job_failed = %+v", f)
	}
	if errs := events.Named(jobcast.EventError); len(errs) != 1 || errs[0].ErrorCode != "E_ENRICHMENT_FAILED" {
		t.Errorf("error events = %+v", errs)
	}
	if n := len(events.Named(jobcast.EventJobStarted)); n != 1 {
		t.Errorf("%d job_started events: the first progress starts a job", n)
	}
	if n := len(events.Named(jobcast.EventJobCompleted)); n != 0 {
		t.Errorf("a failed job recorded job_completed")
	}
}

// A client authenticating by hello records connect_failed when its token is
// refused, and when no hello comes in time.
func TestTelemetryHelloFailures(t *testing.T) {
	t.Parallel()
	e, events := newTelemetryEnv(t, jobcast.Config{TokenTTL: time.Minute, HelloTimeout: 5 * time.Second})
	tk := e.createJob(t)
	e.clock.Advance(2 * time.Minute)

	c := dial(t, e.wsURL(url.Values{"jobId": {tk.JobID}}), nil)
	c.send(protocol.TypeHello, protocol.Hello{Token: tk.Token, NetworkType: "wifi", AppVersion: "3.2.0"})
	c.expectError(protocol.ErrTokenExpired)
	c.expectClose(protocol.CloseTokenExpired)
	got := events.Wait(t, jobcast.EventConnectFailed, 1)[0]
	if got.Reason != jobcast.ReasonTokenExpired || got.JobID != tk.JobID || got.NetworkType != "wifi" || got.AppVersion != "3.2.0" {
		t.Errorf("hello with an expired token: %+v", got)
	}

	silent := dial(t, e.wsURL(url.Values{"jobId": {tk.JobID}}), nil)
	e.waitTimers(t, 1)
	e.clock.Advance(5 * time.Second)
	silent.expectError(protocol.ErrTokenInvalid)
	got = events.Wait(t, jobcast.EventConnectFailed, 2)[1]
	if got.Reason != jobcast.ReasonHelloTimeout || got.JobID != tk.JobID {
		t.Errorf("hello timeout: %+v", got)
	}
	if n := len(events.Named(jobcast.EventError)); n != 0 {
		t.Errorf("refused connections recorded %d error events as well", n)
	}
}
