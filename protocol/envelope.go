package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Version is the envelope version this package speaks; every frame carries it
// in "v" so that a future incompatible protocol can be told apart.
const Version = 2

// Subprotocol is the WebSocket subprotocol a server selects when a browser
// sends its token as "bearer.<token>" in Sec-WebSocket-Protocol.
const Subprotocol = "jobcast.v2"

// BearerSubprotocolPrefix prefixes a token carried in Sec-WebSocket-Protocol.
const BearerSubprotocolPrefix = "bearer."

// MaxFrameBytes is the largest frame either side accepts by default (64 KiB);
// larger frames close the connection with CloseMessageTooBig.
const MaxFrameBytes = 64 << 10

// Message types, server to client.
const (
	TypeReady        = "ready"
	TypeJobStarted   = "job_started"
	TypeJobProgress  = "job_progress"
	TypeJobCompleted = "job_completed"
	TypeJobFailed    = "job_failed"
	TypeError        = "error"
	TypePing         = "ping"
	TypePong         = "pong"
)

// Message types, client to server (ping and pong are shared).
const (
	TypeHello = "hello"
)

// Envelope is every frame, in both directions. Seq is set on the messages that
// change job state (job_* and error); it is zero on ready, ping and pong.
type Envelope struct {
	V        int             `json:"v"`
	Type     string          `json:"type"`
	JobID    string          `json:"jobId,omitempty"`
	Pipeline string          `json:"pipeline,omitempty"`
	Seq      int64           `json:"seq,omitempty"`
	TS       int64           `json:"ts"`
	Payload  json.RawMessage `json:"payload,omitempty"`
}

// IsJobMessage reports whether t is a message type that changes job state and
// therefore carries a sequence number.
func IsJobMessage(t string) bool {
	switch t {
	case TypeJobStarted, TypeJobProgress, TypeJobCompleted, TypeJobFailed, TypeError:
		return true
	}
	return false
}

// IsTerminal reports whether t ends a job: no job message follows it.
func IsTerminal(t string) bool {
	return t == TypeJobCompleted || t == TypeJobFailed
}

// Encode renders e as a JSON frame.
func (e *Envelope) Encode() ([]byte, error) {
	return json.Marshal(e)
}

// ErrFrame describes why an inbound frame was rejected; its text is safe to
// show to the peer.
type ErrFrame struct{ Reason string }

func (e *ErrFrame) Error() string { return "protocol: " + e.Reason }

func frameErr(format string, args ...any) error {
	return &ErrFrame{Reason: fmt.Sprintf(format, args...)}
}

// IsFrameError reports whether err came from frame validation.
func IsFrameError(err error) bool {
	var fe *ErrFrame
	return errors.As(err, &fe)
}

// DecodeClientFrame parses and validates a frame sent by a client. Only
// hello, ping and pong are valid from clients; anything else, malformed JSON,
// a wrong version or an oversized frame is an *ErrFrame.
func DecodeClientFrame(data []byte) (*Envelope, error) {
	if len(data) > MaxFrameBytes {
		return nil, frameErr("frame of %d bytes exceeds %d", len(data), MaxFrameBytes)
	}
	var e Envelope
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&e); err != nil {
		return nil, frameErr("malformed JSON frame")
	}
	// Decoder.More reports false before a stray ']' or '}', so ask for the
	// next token instead: anything but EOF is trailing data.
	if _, err := dec.Token(); err != io.EOF {
		return nil, frameErr("trailing data after JSON frame")
	}
	if e.V != 0 && e.V != Version {
		return nil, frameErr("unsupported protocol version %d (want %d)", e.V, Version)
	}
	// A null payload means no payload, as it does for hello and for
	// producer events; clients in other languages often send one.
	if bytes.Equal(e.Payload, []byte("null")) {
		e.Payload = nil
	}
	switch e.Type {
	case TypeHello:
		if len(e.Payload) > 0 {
			var h Hello
			if err := json.Unmarshal(e.Payload, &h); err != nil {
				return nil, frameErr("hello payload must be an object with string fields")
			}
			if err := h.Validate(); err != nil {
				return nil, err
			}
		}
	case TypePing, TypePong:
		if len(e.Payload) > 0 && !isJSONObject(e.Payload) {
			return nil, frameErr("%s payload must be an object", e.Type)
		}
	case "":
		return nil, frameErr("missing message type")
	default:
		return nil, frameErr("unknown message type %q", e.Type)
	}
	return &e, nil
}

// DecodeServerFrame parses a frame sent by a server; clients use it. It checks
// only the envelope, so that new server message types do not break old
// clients.
func DecodeServerFrame(data []byte) (*Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, frameErr("malformed JSON frame")
	}
	if e.Type == "" {
		return nil, frameErr("missing message type")
	}
	return &e, nil
}

func isJSONObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{' && json.Valid(raw)
}
