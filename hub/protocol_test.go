package hub_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/protocol"
)

// checkEnvelope asserts the envelope fields every frame carries.
func checkEnvelope(t *testing.T, f frame, jobID string, ts time.Time) {
	t.Helper()
	for _, k := range []string{"v", "type", "jobId", "pipeline", "ts"} {
		if _, ok := f.raw[k]; !ok {
			t.Errorf("%s frame lacks %q: %s", f.Type, k, f.data)
		}
	}
	if f.V != protocol.Version {
		t.Errorf("%s frame v = %d, want %d", f.Type, f.V, protocol.Version)
	}
	if f.JobID != jobID || f.Pipeline != "csv_import" {
		t.Errorf("%s frame jobId/pipeline = %q/%q", f.Type, f.JobID, f.Pipeline)
	}
	if f.TS != ts.UnixMilli() {
		t.Errorf("%s frame ts = %d, want %d", f.Type, f.TS, ts.UnixMilli())
	}
	_, hasSeq := f.raw["seq"]
	if protocol.IsJobMessage(f.Type) != hasSeq || (hasSeq && f.Seq <= 0) {
		t.Errorf("%s frame seq present=%v value %d", f.Type, hasSeq, f.Seq)
	}
}

func TestEnvelopeAndReady(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{HeartbeatInterval: 20 * time.Second, PongTimeout: 5 * time.Second, Throttle: 250 * time.Millisecond})
	tk := e.createJob(t)
	e.send(t, tk.JobID, started(), progress(1))
	c := dial(t, e.wsURL(url.Values{"jobId": {tk.JobID}}), bearer(tk.Token))
	now := e.clock.Now()

	f := c.expect(protocol.TypeReady)
	checkEnvelope(t, f, tk.JobID, now)
	var r protocol.Ready
	if err := json.Unmarshal(f.Payload, &r); err != nil {
		t.Fatal(err)
	}
	var rawReady map[string]json.RawMessage
	if err := json.Unmarshal(f.Payload, &rawReady); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"connectionId", "heartbeatIntervalMs", "pongTimeoutMs", "throttleMs", "resumed", "state"} {
		if _, ok := rawReady[k]; !ok {
			t.Errorf("ready lacks %q", k)
		}
	}
	if r.ConnectionID == "" || r.HeartbeatIntervalMs != 20000 || r.PongTimeoutMs != 5000 || r.ThrottleMs != 250 || r.Resumed {
		t.Errorf("ready = %+v", r)
	}
	st := r.State
	if st.JobID != tk.JobID || st.Pipeline != "csv_import" || st.Status != protocol.StatusRunning ||
		st.Seq != 2 || st.ProcessedCount != 1 || st.TotalCount != 100 {
		t.Errorf("ready state = %+v", st)
	}
	if info := e.connection(t, tk.JobID); info.ConnectionID != r.ConnectionID {
		t.Errorf("connectionId %q not listed (%q)", r.ConnectionID, info.ConnectionID)
	}

	// A fresh client gets the job's history (started, latest progress).
	for _, f := range c.barrier() {
		checkEnvelope(t, f, tk.JobID, now)
	}
	// Live messages, a server ping, a pong and the terminal frame.
	e.send(t, tk.JobID, errorEv(protocol.ErrGeminiTimeout))
	checkEnvelope(t, c.expect(protocol.TypeError), tk.JobID, now)
	e.clock.Advance(20 * time.Second)
	checkEnvelope(t, c.expect(protocol.TypePing), tk.JobID, e.clock.Now())
	c.send(protocol.TypePing, protocol.Ping{ClientTime: 7})
	checkEnvelope(t, c.expect(protocol.TypePong), tk.JobID, e.clock.Now())
	e.send(t, tk.JobID, completed())
	checkEnvelope(t, c.expect(protocol.TypeJobCompleted), tk.JobID, e.clock.Now())
	c.expectClose(protocol.CloseJobFinished)
}

// Every state-changing message gets the next seq of its job, and every
// client of the job sees the same frames.
func TestSeqAndFanOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{ThrottleDisabled: true})
	tk := e.createJob(t)
	bystander := e.createJob(t)
	var clients []*ws
	for range 3 {
		c, _ := e.open(t, tk)
		clients = append(clients, c)
	}
	// A client that authenticated by hello is a watcher like the others.
	h := dial(t, e.wsURL(url.Values{"jobId": {tk.JobID}}), nil)
	h.send(protocol.TypeHello, protocol.Hello{Token: tk.Token})
	h.ready()
	clients = append(clients, h)
	other, _ := e.open(t, bystander)

	e.send(t, tk.JobID, started(), progress(1), progress(2))
	e.send(t, tk.JobID, errorEv(protocol.ErrEnrichmentFailed))
	e.send(t, bystander.JobID, started())
	e.send(t, tk.JobID, progress(3), failed(protocol.ErrGeminiTimeout))
	wantTypes := []string{"job_started#1", "job_progress#2", "job_progress#3", "error#4", "job_progress#5", "job_failed#6"}

	var first [][]byte
	for i, c := range clients {
		var got []frame
		for range wantTypes {
			got = append(got, c.next())
		}
		if !slices.Equal(types(got), wantTypes) {
			t.Errorf("client %d got %v, want %v", i, types(got), wantTypes)
		}
		c.expectClose(protocol.CloseJobFinished)
		for j, f := range got {
			if i == 0 {
				first = append(first, f.data)
			} else if j < len(first) && !bytes.Equal(f.data, first[j]) {
				t.Errorf("client %d frame %d differs:\n%s\n%s", i, j, f.data, first[j])
			}
		}
	}
	if got := types(other.barrier()); !slices.Equal(got, []string{"job_started#1"}) {
		t.Errorf("other job's client got %v", got)
	}
}

func TestResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	tk := e.createJob(t)
	// seq: 1 started, 2 progress, 3 error, 4 progress, 5 progress, 6 error, 7 progress
	e.send(t, tk.JobID, started(), progress(10), errorEv(protocol.ErrGeminiTimeout), progress(20), progress(30),
		errorEv("E_CUSTOM"), progress(40))

	tests := []struct {
		name        string
		query       string // lastSeq query parameter; "" for none
		header      string // X-Last-Seq header; "" for none
		wantResumed bool
		wantLastSeq int64
		want        []string
	}{
		{"fresh", "", "", false, 0, []string{"job_started#1", "error#3", "error#6", "job_progress#7"}},
		{"query lastSeq=0", "0", "", true, 0, []string{"job_started#1", "error#3", "error#6", "job_progress#7"}},
		{"query lastSeq=2", "2", "", true, 2, []string{"error#3", "error#6", "job_progress#7"}},
		{"header lastSeq=2", "", "2", true, 2, []string{"error#3", "error#6", "job_progress#7"}},
		{"header lastSeq=3", "", "3", true, 3, []string{"error#6", "job_progress#7"}},
		{"query lastSeq=6", "6", "", true, 6, []string{"job_progress#7"}},
		{"up to date", "7", "", true, 7, nil},
		{"header wins over query", "0", "6", true, 6, []string{"job_progress#7"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := url.Values{"jobId": {tk.JobID}}
			if tt.query != "" {
				q.Set("lastSeq", tt.query)
			}
			h := bearer(tk.Token)
			if tt.header != "" {
				h.Set("X-Last-Seq", tt.header)
			}
			c := dial(t, e.wsURL(q), h)
			r := c.ready()
			if r.Resumed != tt.wantResumed || r.LastSeq != tt.wantLastSeq || r.State.Seq != 7 {
				t.Errorf("ready resumed=%v lastSeq=%d state.seq=%d, want %v %d 7", r.Resumed, r.LastSeq, r.State.Seq, tt.wantResumed, tt.wantLastSeq)
			}
			got := c.barrier()
			if !slices.Equal(types(got), tt.want) {
				t.Errorf("replay = %v, want %v", types(got), tt.want)
			}
			for _, f := range got {
				if f.Type == protocol.TypeJobProgress && processed(t, f) != 40 {
					t.Errorf("replayed progress is not the latest: %s", f.data)
				}
			}
		})
	}
}

// The hello frame carries the resume point for clients that cannot set
// headers or query parameters.
func TestResumeByHello(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	tk := e.createJob(t)
	e.send(t, tk.JobID, started(), progress(1), errorEv(protocol.ErrGeminiTimeout), progress(2))
	for _, tc := range []struct {
		name    string
		query   string
		hello   *int64
		want    []string
		resumed bool
	}{
		{"hello lastSeq", "", ptr(int64(1)), []string{"error#3", "job_progress#4"}, true},
		{"hello wins over query", "0", ptr(int64(3)), []string{"job_progress#4"}, true},
		{"query only", "3", nil, []string{"job_progress#4"}, true},
		{"none", "", nil, []string{"job_started#1", "error#3", "job_progress#4"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q := url.Values{"jobId": {tk.JobID}}
			if tc.query != "" {
				q.Set("lastSeq", tc.query)
			}
			c := dial(t, e.wsURL(q), nil)
			c.send(protocol.TypeHello, protocol.Hello{Token: tk.Token, LastSeq: tc.hello})
			if r := c.ready(); r.Resumed != tc.resumed {
				t.Errorf("resumed = %v, want %v", r.Resumed, tc.resumed)
			}
			if got := types(c.barrier()); !slices.Equal(got, tc.want) {
				t.Errorf("replay = %v, want %v", got, tc.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// Live messages that arrive while a resuming client is being replayed to are
// neither lost nor duplicated.
func TestResumeThenLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{ThrottleDisabled: true})
	tk := e.createJob(t)
	e.send(t, tk.JobID, started(), errorEv(protocol.ErrGeminiTimeout))
	q := url.Values{"jobId": {tk.JobID}, "lastSeq": {"1"}}
	c := dial(t, e.wsURL(q), bearer(tk.Token))
	c.ready()
	e.send(t, tk.JobID, progress(1), errorEv("E_X"), completed())
	got, code := c.untilClose()
	if code != protocol.CloseJobFinished {
		t.Errorf("close %d, want 1000", code)
	}
	if want := []int64{2, 3, 4, 5}; !slices.Equal(seqs(got), want) {
		t.Errorf("seqs = %v, want %v", seqs(got), want)
	}
}

func TestTerminal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		terminal protocol.ProducerEvent
		typ      string
		status   string
	}{
		{"completed", completed(), protocol.TypeJobCompleted, protocol.StatusCompleted},
		{"failed", failed(protocol.ErrEnrichmentFailed), protocol.TypeJobFailed, protocol.StatusFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, jobcast.Config{})
			tk := e.createJob(t)
			live, _ := e.open(t, tk)
			e.send(t, tk.JobID, started(), progress(5))
			live.expect(protocol.TypeJobStarted)
			live.expect(protocol.TypeJobProgress)
			e.send(t, tk.JobID, tt.terminal)
			// Live connections get the terminal frame, then 1000.
			if f := live.expect(tt.typ); f.Seq != 3 {
				t.Errorf("terminal seq = %d, want 3", f.Seq)
			}
			live.expectClose(protocol.CloseJobFinished)
			waitFor(t, "the finished connection to go", func() bool { return len(e.connections(t, tk.JobID)) == 0 })

			// Reconnecting after the terminal: the terminal, then 1000.
			for _, last := range []string{"", "0", "2"} {
				q := url.Values{"jobId": {tk.JobID}}
				if last != "" {
					q.Set("lastSeq", last)
				}
				c := dial(t, e.wsURL(q), bearer(tk.Token))
				if r := c.ready(); r.State.Status != tt.status || r.State.Seq != 3 {
					t.Errorf("lastSeq %q: ready state = %+v", last, r.State)
				}
				got, code := c.untilClose()
				if code != protocol.CloseJobFinished {
					t.Errorf("lastSeq %q: close %d, want 1000", last, code)
				}
				if len(got) == 0 || got[len(got)-1].Type != tt.typ {
					t.Errorf("lastSeq %q: got %v, want the %s frame last", last, types(got), tt.typ)
				}
			}
			// A client that already saw the terminal frame just gets 1000.
			c := dial(t, e.wsURL(url.Values{"jobId": {tk.JobID}, "lastSeq": {"3"}}), bearer(tk.Token))
			c.ready()
			c.expectClose(protocol.CloseJobFinished)

			// Producers cannot add to a finished job.
			_, err := e.srv.Producer.SendEvent(ctxT(t), tk.JobID, progress(6))
			if ae, ok := err.(*client.APIError); !ok || ae.Status != http.StatusConflict {
				t.Errorf("event after terminal: %v, want 409", err)
			}
		})
	}
}

func TestErrorCatalog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{Errors: map[string]jobcast.CatalogEntry{
		"E_ENRICHMENT_FAILED": {Message: "Overridden enrichment text.", Retryable: true},
		"E_QUOTA":             {Message: "You ran out of quota.", Retryable: false},
	}})
	tests := []struct {
		name    string
		payload map[string]any
		want    protocol.ErrorPayload
	}{
		{"catalog message and retryable", map[string]any{"code": "E_GEMINI_TIMEOUT"},
			protocol.ErrorPayload{Code: "E_GEMINI_TIMEOUT", Message: jobcast.DefaultCatalog()["E_GEMINI_TIMEOUT"].Message, Retryable: true}},
		{"producer message wins", map[string]any{"code": "E_GEMINI_TIMEOUT", "message": "Gemini is slow today.", "retryable": false},
			protocol.ErrorPayload{Code: "E_GEMINI_TIMEOUT", Message: "Gemini is slow today.", Retryable: false}},
		{"config override", map[string]any{"code": "E_ENRICHMENT_FAILED"},
			protocol.ErrorPayload{Code: "E_ENRICHMENT_FAILED", Message: "Overridden enrichment text.", Retryable: true}},
		{"config addition", map[string]any{"code": "E_QUOTA"},
			protocol.ErrorPayload{Code: "E_QUOTA", Message: "You ran out of quota.", Retryable: false}},
		{"unknown code passes through", map[string]any{"code": "E_VENDOR_X", "message": "Vendor X broke.", "retryable": true, "details": map[string]any{"provider": "x"}},
			protocol.ErrorPayload{Code: "E_VENDOR_X", Message: "Vendor X broke.", Retryable: true, Details: json.RawMessage(`{"provider":"x"}`)}},
		{"unknown code without message", map[string]any{"code": "E_VENDOR_Y"},
			protocol.ErrorPayload{Code: "E_VENDOR_Y", Message: "An error occurred (E_VENDOR_Y).", Retryable: false}},
	}
	for _, tt := range tests {
		for _, typ := range []string{protocol.EventError, protocol.EventFailed} {
			t.Run(tt.name+"/"+typ, func(t *testing.T) {
				t.Parallel()
				tk := e.createJob(t)
				c, _ := e.open(t, tk)
				e.send(t, tk.JobID, client.NewEvent(typ, tt.payload))
				f := c.next()
				if !protocol.IsJobMessage(f.Type) || f.Type == protocol.TypeJobProgress {
					t.Fatalf("got %s frame", f.Type)
				}
				got := errorPayload(t, f)
				if got.Code != tt.want.Code || got.Message != tt.want.Message || got.Retryable != tt.want.Retryable ||
					!jsonEqual(got.Details, tt.want.Details) {
					t.Errorf("payload = %+v (details %s), want %+v (details %s)", got, got.Details, tt.want, tt.want.Details)
				}
				// The job's lastError says the same.
				st, err := e.srv.Producer.GetJob(ctxT(t), tk.JobID)
				if err != nil {
					t.Fatal(err)
				}
				if st.LastError == nil || st.LastError.Message != tt.want.Message || st.LastError.Retryable != tt.want.Retryable {
					t.Errorf("lastError = %+v", st.LastError)
				}
			})
		}
	}
}

func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func TestClientContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	full := struct{ app, os, net, dev string }{"2.3.1", "iOS 18.1", "cellular", "iPhone15,2"}
	tests := []struct {
		name   string
		header http.Header
		query  url.Values
		hello  *protocol.Hello // sent after the handshake (with the token when auth is "hello")
		auth   string          // header or hello
		want   struct {
			AppVersion, OSVersion, NetworkType, DeviceModel string
			ReconnectAttempt                                int
			LastDisconnect                                  string
		}
	}{
		{name: "headers", auth: "header", header: http.Header{
			"X-App-Version": {full.app}, "X-Os-Version": {full.os}, "X-Network-Type": {full.net}, "X-Device-Model": {full.dev},
			"X-Reconnect-Attempt": {"3"}, "X-Last-Disconnect": {"heartbeat_timeout"},
		}},
		{name: "query", auth: "header", query: url.Values{
			"appVersion": {full.app}, "osVersion": {full.os}, "networkType": {full.net}, "deviceModel": {full.dev},
			"reconnectAttempt": {"3"}, "lastDisconnect": {"heartbeat_timeout"},
		}},
		{name: "hello auth", auth: "hello", hello: &protocol.Hello{
			AppVersion: full.app, OSVersion: full.os, NetworkType: full.net, DeviceModel: full.dev,
			ReconnectAttempt: 3, LastDisconnect: "heartbeat_timeout",
		}},
		{name: "hello after header auth", auth: "header", hello: &protocol.Hello{
			AppVersion: full.app, OSVersion: full.os, NetworkType: full.net, DeviceModel: full.dev,
			ReconnectAttempt: 3, LastDisconnect: "heartbeat_timeout",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tk := e.createJob(t)
			q := url.Values{"jobId": {tk.JobID}}
			for k, v := range tt.query {
				q[k] = v
			}
			h := tt.header.Clone()
			if h == nil {
				h = http.Header{}
			}
			if tt.auth == "header" {
				h.Set("Authorization", "Bearer "+tk.Token)
			}
			c := dial(t, e.wsURL(q), h)
			if tt.hello != nil {
				hello := *tt.hello
				if tt.auth == "hello" {
					hello.Token = tk.Token
				}
				if tt.auth == "header" {
					c.ready()
				}
				c.send(protocol.TypeHello, hello)
			}
			if tt.auth == "hello" {
				c.ready()
			}
			c.barrier() // the hello, if any, is applied
			got := e.connection(t, tk.JobID).Client
			if got.AppVersion != full.app || got.OSVersion != full.os || got.NetworkType != full.net || got.DeviceModel != full.dev ||
				got.ReconnectAttempt != 3 || got.LastDisconnect != "heartbeat_timeout" {
				t.Errorf("client context = %+v", got)
			}
		})
	}

	t.Run("unknown network type", func(t *testing.T) {
		t.Parallel()
		tk := e.createJob(t)
		h := bearer(tk.Token)
		h.Set("X-Network-Type", "5g-ultra")
		c := dial(t, e.wsURL(url.Values{"jobId": {tk.JobID}}), h)
		c.ready()
		if got := e.connection(t, tk.JobID).Client.NetworkType; got != protocol.NetworkUnknown {
			t.Errorf("network type = %q, want unknown", got)
		}
	})
	t.Run("header wins over query", func(t *testing.T) {
		t.Parallel()
		tk := e.createJob(t)
		h := bearer(tk.Token)
		h.Set("X-App-Version", "from-header")
		c := dial(t, e.wsURL(url.Values{"jobId": {tk.JobID}, "appVersion": {"from-query"}}), h)
		c.ready()
		if got := e.connection(t, tk.JobID).Client.AppVersion; got != "from-header" {
			t.Errorf("app version = %q", got)
		}
	})
	t.Run("oversized hello field is a protocol error", func(t *testing.T) {
		t.Parallel()
		tk := e.createJob(t)
		c, _ := e.open(t, tk)
		c.send(protocol.TypeHello, protocol.Hello{AppVersion: strconv.Itoa(1) + string(bytes.Repeat([]byte("x"), 200))})
		c.expectError(protocol.ErrProtocol)
		c.expectNothing()
		if got := e.connection(t, tk.JobID).Client.AppVersion; got != "" {
			t.Errorf("app version = %q, want it unchanged", got)
		}
	})
}

// A client claiming a lastSeq beyond the job's (a store restored from a
// backup, a client bug) resumes from the job's seq instead of silently
// dropping every live message up to its number.
func TestResumeAheadOfServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{ThrottleDisabled: true})
	tk := e.createJob(t)
	e.send(t, tk.JobID, started(), progress(1))
	q := url.Values{"jobId": {tk.JobID}, "lastSeq": {"50"}}
	c := dial(t, e.wsURL(q), bearer(tk.Token))
	if r := c.ready(); !r.Resumed || r.LastSeq != 2 || r.State.Seq != 2 {
		t.Fatalf("ready resumed=%v lastSeq=%d state.seq=%d, want true 2 2", r.Resumed, r.LastSeq, r.State.Seq)
	}
	e.send(t, tk.JobID, errorEv("E_X"), completed())
	got, code := c.untilClose()
	if code != protocol.CloseJobFinished {
		t.Errorf("close %d, want 1000", code)
	}
	if want := []int64{3, 4}; !slices.Equal(seqs(got), want) {
		t.Errorf("seqs = %v, want %v", seqs(got), want)
	}
}
