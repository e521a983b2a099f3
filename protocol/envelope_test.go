package protocol_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/jobcast/jobcast/protocol"
)

// wantFrameError fails t unless err is an *ErrFrame whose reason contains
// want.
func wantFrameError(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want *ErrFrame containing %q", want)
	}
	var fe *protocol.ErrFrame
	if !errors.As(err, &fe) {
		t.Fatalf("got %T (%v), want *protocol.ErrFrame", err, err)
	}
	if !protocol.IsFrameError(err) {
		t.Fatalf("IsFrameError(%v) = false", err)
	}
	if !strings.Contains(fe.Reason, want) {
		t.Fatalf("reason %q does not contain %q", fe.Reason, want)
	}
	if got := err.Error(); got != "protocol: "+fe.Reason {
		t.Fatalf("Error() = %q, want %q", got, "protocol: "+fe.Reason)
	}
}

func TestDecodeClientFrameValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		frame     string
		wantType  string
		wantV     int
		checkHell func(t *testing.T, h protocol.Hello)
	}{
		{name: "ping", frame: `{"v":2,"type":"ping","ts":1}`, wantType: protocol.TypePing, wantV: 2},
		{name: "ping with payload", frame: `{"v":2,"type":"ping","payload":{"clientTime":5}}`, wantType: protocol.TypePing, wantV: 2},
		{name: "pong echoes server time", frame: `{"v":2,"type":"pong","payload":{"serverTime":1764133200123}}`, wantType: protocol.TypePong, wantV: 2},
		{name: "version omitted", frame: `{"type":"pong"}`, wantType: protocol.TypePong, wantV: 0},
		{name: "surrounding whitespace", frame: " \n{\"v\":2,\"type\":\"ping\"}\n ", wantType: protocol.TypePing, wantV: 2},
		{name: "hello without payload", frame: `{"v":2,"type":"hello"}`, wantType: protocol.TypeHello, wantV: 2},
		{name: "ping null payload", frame: `{"v":2,"type":"ping","payload":null}`, wantType: protocol.TypePing, wantV: 2},
		{name: "hello null payload", frame: `{"v":2,"type":"hello","payload":null}`, wantType: protocol.TypeHello, wantV: 2},
		{
			name:     "hello with context",
			frame:    `{"v":2,"type":"hello","payload":{"token":"abc","appVersion":"1.2.3","osVersion":"iOS 17","networkType":"cellular","deviceModel":"iPhone15,2","lastSeq":7,"reconnectAttempt":2,"lastDisconnect":"network"}}`,
			wantType: protocol.TypeHello, wantV: 2,
			checkHell: func(t *testing.T, h protocol.Hello) {
				t.Helper()
				if h.Token != "abc" || h.AppVersion != "1.2.3" || h.NetworkType != "cellular" || h.LastSeq == nil || *h.LastSeq != 7 || h.ReconnectAttempt != 2 {
					t.Fatalf("hello decoded as %+v", h)
				}
			},
		},
		{
			name:     "hello field at the limit",
			frame:    `{"v":2,"type":"hello","payload":{"deviceModel":"` + strings.Repeat("x", 128) + `"}}`,
			wantType: protocol.TypeHello, wantV: 2,
		},
		{
			name:     "hello lastSeq zero",
			frame:    `{"v":2,"type":"hello","payload":{"lastSeq":0}}`,
			wantType: protocol.TypeHello, wantV: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env, err := protocol.DecodeClientFrame([]byte(tt.frame))
			if err != nil {
				t.Fatalf("DecodeClientFrame: %v", err)
			}
			if env.Type != tt.wantType || env.V != tt.wantV {
				t.Fatalf("got type %q v %d, want %q v %d", env.Type, env.V, tt.wantType, tt.wantV)
			}
			if tt.checkHell != nil {
				var h protocol.Hello
				if err := json.Unmarshal(env.Payload, &h); err != nil {
					t.Fatalf("decode hello payload: %v", err)
				}
				tt.checkHell(t, h)
			}
		})
	}
}

func TestDecodeClientFrameInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		frame string
		want  string // substring of the ErrFrame reason
	}{
		{name: "empty", frame: ``, want: "malformed JSON frame"},
		{name: "malformed JSON", frame: `{"v":2,"type":`, want: "malformed JSON frame"},
		{name: "not an object", frame: `[1,2]`, want: "malformed JSON frame"},
		{name: "string version", frame: `{"v":"2","type":"ping"}`, want: "malformed JSON frame"},
		{name: "trailing object", frame: `{"type":"ping"} {"type":"pong"}`, want: "trailing data"},
		{name: "trailing bracket", frame: `{"type":"ping"}]`, want: "trailing data"},
		{name: "trailing brace", frame: `{"type":"ping"}}`, want: "trailing data"},
		{name: "missing type", frame: `{"v":2}`, want: "missing message type"},
		{name: "empty type", frame: `{"v":2,"type":""}`, want: "missing message type"},
		{name: "unknown type", frame: `{"v":2,"type":"subscribe"}`, want: `unknown message type "subscribe"`},
		{name: "server-only type", frame: `{"v":2,"type":"job_progress"}`, want: `unknown message type "job_progress"`},
		{name: "wrong version", frame: `{"v":1,"type":"ping"}`, want: "unsupported protocol version 1 (want 2)"},
		{name: "future version", frame: `{"v":3,"type":"ping"}`, want: "unsupported protocol version 3 (want 2)"},
		{name: "oversize", frame: `{"type":"ping","payload":{"x":"` + strings.Repeat("a", protocol.MaxFrameBytes) + `"}}`, want: "exceeds 65536"},
		{name: "ping payload array", frame: `{"type":"ping","payload":[1]}`, want: "ping payload must be an object"},
		{name: "pong payload number", frame: `{"type":"pong","payload":5}`, want: "pong payload must be an object"},
		{name: "hello payload string", frame: `{"type":"hello","payload":"hi"}`, want: "hello payload must be an object"},
		{name: "hello field wrong type", frame: `{"type":"hello","payload":{"appVersion":3}}`, want: "hello payload must be an object"},
		{name: "hello appVersion too long", frame: `{"type":"hello","payload":{"appVersion":"` + strings.Repeat("1", 129) + `"}}`, want: "hello field appVersion longer than 128 bytes"},
		{name: "hello osVersion too long", frame: `{"type":"hello","payload":{"osVersion":"` + strings.Repeat("1", 129) + `"}}`, want: "hello field osVersion longer than 128 bytes"},
		{name: "hello networkType too long", frame: `{"type":"hello","payload":{"networkType":"` + strings.Repeat("w", 129) + `"}}`, want: "hello field networkType longer than 128 bytes"},
		{name: "hello deviceModel too long", frame: `{"type":"hello","payload":{"deviceModel":"` + strings.Repeat("d", 129) + `"}}`, want: "hello field deviceModel longer than 128 bytes"},
		{name: "hello lastDisconnect too long", frame: `{"type":"hello","payload":{"lastDisconnect":"` + strings.Repeat("r", 129) + `"}}`, want: "hello field lastDisconnect longer than 128 bytes"},
		{name: "hello negative lastSeq", frame: `{"type":"hello","payload":{"lastSeq":-1}}`, want: "hello lastSeq must be >= 0"},
		{name: "hello negative reconnectAttempt", frame: `{"type":"hello","payload":{"reconnectAttempt":-3}}`, want: "hello reconnectAttempt must be >= 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env, err := protocol.DecodeClientFrame([]byte(tt.frame))
			if env != nil {
				t.Fatalf("got envelope %+v with error %v, want nil envelope", env, err)
			}
			wantFrameError(t, err, tt.want)
		})
	}
}

// The size limit is on the whole frame: exactly MaxFrameBytes is accepted.
func TestDecodeClientFrameSizeBoundary(t *testing.T) {
	t.Parallel()
	frame := func(n int) []byte {
		prefix, suffix := `{"type":"ping","payload":{"x":"`, `"}}`
		return []byte(prefix + strings.Repeat("a", n-len(prefix)-len(suffix)) + suffix)
	}
	if _, err := protocol.DecodeClientFrame(frame(protocol.MaxFrameBytes)); err != nil {
		t.Fatalf("frame of exactly %d bytes: %v", protocol.MaxFrameBytes, err)
	}
	_, err := protocol.DecodeClientFrame(frame(protocol.MaxFrameBytes + 1))
	wantFrameError(t, err, "frame of 65537 bytes exceeds 65536")
}

func TestDecodeServerFrame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		frame    string
		wantType string
		wantErr  string
	}{
		{name: "future type passes", frame: `{"v":2,"type":"job_paused","seq":3}`, wantType: "job_paused"},
		{name: "progress", frame: `{"v":2,"type":"job_progress","jobId":"j","seq":42,"ts":1,"payload":{"processedCount":1}}`, wantType: protocol.TypeJobProgress},
		{name: "malformed", frame: `{`, wantErr: "malformed JSON frame"},
		{name: "missing type", frame: `{"v":2}`, wantErr: "missing message type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env, err := protocol.DecodeServerFrame([]byte(tt.frame))
			if tt.wantErr != "" {
				wantFrameError(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("DecodeServerFrame: %v", err)
			}
			if env.Type != tt.wantType {
				t.Fatalf("type = %q, want %q", env.Type, tt.wantType)
			}
		})
	}
}

func TestEnvelopeEncodeRoundTrip(t *testing.T) {
	t.Parallel()
	in := protocol.Envelope{V: protocol.Version, Type: protocol.TypeJobProgress, JobID: "job-1", Pipeline: "csv_import", Seq: 42, TS: 1764133200123, Payload: json.RawMessage(`{"processedCount":10}`)}
	data, err := in.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	want := `{"v":2,"type":"job_progress","jobId":"job-1","pipeline":"csv_import","seq":42,"ts":1764133200123,"payload":{"processedCount":10}}`
	if string(data) != want {
		t.Fatalf("Encode = %s\nwant     %s", data, want)
	}
	// ready, ping and pong carry no seq: it is omitted, not sent as 0.
	ping := protocol.Envelope{V: protocol.Version, Type: protocol.TypePing, TS: 5}
	data, err = ping.Encode()
	if err != nil {
		t.Fatalf("Encode ping: %v", err)
	}
	if want := `{"v":2,"type":"ping","ts":5}`; string(data) != want {
		t.Fatalf("Encode ping = %s, want %s", data, want)
	}
}

func TestMessageTypeClassification(t *testing.T) {
	t.Parallel()
	tests := []struct {
		typ      string
		job      bool
		terminal bool
	}{
		{protocol.TypeJobStarted, true, false},
		{protocol.TypeJobProgress, true, false},
		{protocol.TypeJobCompleted, true, true},
		{protocol.TypeJobFailed, true, true},
		{protocol.TypeError, true, false},
		{protocol.TypeReady, false, false},
		{protocol.TypePing, false, false},
		{protocol.TypePong, false, false},
		{protocol.TypeHello, false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		if got := protocol.IsJobMessage(tt.typ); got != tt.job {
			t.Errorf("IsJobMessage(%q) = %v, want %v", tt.typ, got, tt.job)
		}
		if got := protocol.IsTerminal(tt.typ); got != tt.terminal {
			t.Errorf("IsTerminal(%q) = %v, want %v", tt.typ, got, tt.terminal)
		}
	}
}

func TestNormalizeNetworkType(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"wifi": "wifi", "cellular": "cellular", "ethernet": "ethernet",
		"unknown": "unknown", "": "unknown", "5g": "unknown", "WIFI": "unknown",
	}
	for in, want := range tests {
		if got := protocol.NormalizeNetworkType(in); got != want {
			t.Errorf("NormalizeNetworkType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestJobStateFinished(t *testing.T) {
	t.Parallel()
	for status, want := range map[string]bool{
		protocol.StatusPending: false, protocol.StatusRunning: false,
		protocol.StatusCompleted: true, protocol.StatusFailed: true,
	} {
		s := protocol.JobState{Status: status}
		if got := s.Finished(); got != want {
			t.Errorf("Finished() with status %q = %v, want %v", status, got, want)
		}
	}
}
