package hub

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/jobcast/jobcast/protocol"
)

// TestAppendTextFrameReadsBack checks the hand-made frames of writeBatch
// with gorilla's client reader: every payload length encoding, all frames
// in one write on an upgraded connection, as writeBatch sends them.
func TestAppendTextFrameReadsBack(t *testing.T) {
	t.Parallel()
	sizes := []int{0, 1, 125, 126, 127, 1000, 65535, 65536, 200000}
	payloads := make([][]byte, len(sizes))
	var buf []byte
	for i, n := range sizes {
		payloads[i] = bytes.Repeat([]byte{byte('a' + i)}, n)
		buf = appendTextFrame(buf, payloads[i])
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := websocket.Upgrader{}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		_, _ = ws.NetConn().Write(buf)
		_, _, _ = ws.ReadMessage() // until the client closes
	}))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for i, want := range payloads {
		typ, got, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("frame %d (%d bytes): %v", i, sizes[i], err)
		}
		if typ != websocket.TextMessage || !bytes.Equal(got, want) {
			t.Fatalf("frame %d: type %d, %d bytes, want %d", i, typ, len(got), len(want))
		}
	}
}

func TestParseCanonicalPong(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{`{"v":2,"type":"pong","ts":1764133200123,"payload":{"serverTime":1764133200100}}`, 1764133200100, true},
		{`{"v":2,"type":"pong","ts":0,"payload":{"serverTime":7}}`, 7, true},
		// Anything else takes the general decoder.
		{`{"v":2,"type":"pong","ts":1,"payload":{"serverTime":7}} `, 0, false},
		{`{"v":2,"type":"pong","ts":1,"payload":{"serverTime":7,"clientTime":3}}`, 0, false},
		{`{"v":2,"type":"pong","ts":1,"payload":{"serverTime":07}}`, 0, false},
		{`{"v":2,"type":"pong","ts":-1,"payload":{"serverTime":7}}`, 0, false},
		{`{"v":2,"type":"pong","ts":1,"payload":{"serverTime":}}`, 0, false},
		{`{"v":2,"type":"pong","ts":1,"payload":{"serverTime":12345678901234567890}}`, 0, false},
		{`{"v":2,"type":"pong","payload":{"serverTime":7}}`, 0, false},
		{`{"type":"pong","v":2,"ts":1,"payload":{"serverTime":7}}`, 0, false},
		{`{"v":2,"type":"ping","ts":1,"payload":{"serverTime":7}}`, 0, false},
	}
	for _, tt := range tests {
		got, ok := parseCanonicalPong([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: got %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// BenchmarkPongDecode compares the pong fast path with the general decoder
// it stands in for, on the frame the SDK sends once per heartbeat.
func BenchmarkPongDecode(b *testing.B) {
	frame := []byte(`{"v":2,"type":"pong","ts":1764133200123,"payload":{"serverTime":1764133200100}}`)
	b.Run("canonical", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := parseCanonicalPong(frame); !ok {
				b.Fatal("not canonical")
			}
		}
	})
	b.Run("general", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			env, err := protocol.DecodeClientFrame(frame)
			if err != nil {
				b.Fatal(err)
			}
			var p protocol.Pong
			if err := json.Unmarshal(env.Payload, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestPingFrameMatchesEnvelope checks the hand-built ping against the
// general envelope encoder for ordinary and awkward ids.
func TestPingFrameMatchesEnvelope(t *testing.T) {
	t.Parallel()
	tests := []struct{ jobID, pipeline string }{
		{"job-1", "csv_import"},
		{"", ""},
		{`we"ird\id<&>`, "pipe\u2028line"},
		{"ünïcode", "tab\there"},
	}
	for _, tt := range tests {
		c := &conn{jobID: tt.jobID, pipeline: tt.pipeline}
		got := c.pingFrame(1764133200100, 1764133200123)
		raw, _ := json.Marshal(&protocol.Ping{ServerTime: 1764133200100})
		want, _ := json.Marshal(&protocol.Envelope{V: protocol.Version, Type: protocol.TypePing,
			JobID: tt.jobID, Pipeline: tt.pipeline, TS: 1764133200123, Payload: raw})
		if !bytes.Equal(got, want) {
			t.Errorf("%q/%q:\n got %s\nwant %s", tt.jobID, tt.pipeline, got, want)
		}
	}
}

// TestEnvelopeMatchesJSON checks the hand-built envelope against
// encoding/json's, for awkward ids and a payload with raw JSON inside.
func TestEnvelopeMatchesJSON(t *testing.T) {
	t.Parallel()
	payload := &protocol.Ready{ConnectionID: "n-1", HeartbeatIntervalMs: 30000, State: protocol.JobState{
		JobID: `we"ird<&>`, Status: protocol.StatusRunning, Metadata: []byte(`{ "a" : "<b>&" , "n": [1, 2] }`),
		Result: []byte(`{"u":"\u2028"}`), LastError: &protocol.ErrorPayload{Code: "E_X", Message: "a\tb"},
	}}
	tests := []struct{ typ, jobID, pipeline string }{
		{protocol.TypeReady, "job-1", "csv_import"},
		{protocol.TypeReady, "", ""},
		{protocol.TypeError, `we"ird\id<&>`, "pipe\u2028line"},
		{protocol.TypePong, "ünïcode", "tab\there"},
	}
	for _, tt := range tests {
		c := &conn{jobID: tt.jobID, pipeline: tt.pipeline}
		raw, err := json.Marshal(payload)
		if err != nil {
			t.Fatal(err)
		}
		got := c.wrap(tt.typ, 1764133200123, raw)
		want, _ := json.Marshal(&protocol.Envelope{V: protocol.Version, Type: tt.typ,
			JobID: tt.jobID, Pipeline: tt.pipeline, TS: 1764133200123, Payload: raw})
		if !bytes.Equal(got, want) {
			t.Errorf("%q/%q:\n got %s\nwant %s", tt.jobID, tt.pipeline, got, want)
		}
	}
}

// BenchmarkReadyEnvelope is the ready frame every new connection gets:
// "wrap" as the hub builds it, "marshal" as encoding/json would.
func BenchmarkReadyEnvelope(b *testing.B) {
	c := &conn{jobID: "load-1a2b3c-17", pipeline: "csv_import"}
	payload := &protocol.Ready{ConnectionID: "node-1f", HeartbeatIntervalMs: 30000, PongTimeoutMs: 10000, ThrottleMs: 500,
		State: protocol.JobState{JobID: "load-1a2b3c-17", Pipeline: "csv_import", Status: protocol.StatusRunning,
			Seq: 42, ProcessedCount: 1234, TotalCount: 1 << 40, Metadata: []byte(`{"source":"s3://bucket/file.csv"}`)}}
	b.Run("wrap", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			raw, _ := json.Marshal(payload)
			_ = c.wrap(protocol.TypeReady, 1764133200123, raw)
		}
	})
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			raw, _ := json.Marshal(payload)
			_, _ = json.Marshal(&protocol.Envelope{V: protocol.Version, Type: protocol.TypeReady,
				JobID: c.jobID, Pipeline: c.pipeline, TS: 1764133200123, Payload: raw})
		}
	})
}
