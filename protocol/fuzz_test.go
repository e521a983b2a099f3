package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/jobcast/jobcast/protocol"
)

func FuzzDecodeClientFrame(f *testing.F) {
	for _, seed := range []string{
		`{"v":2,"type":"ping","ts":1}`,
		`{"v":2,"type":"pong","payload":{"serverTime":1764133200123}}`,
		`{"v":2,"type":"hello","payload":{"token":"t","appVersion":"1.0","networkType":"wifi","lastSeq":3,"reconnectAttempt":1}}`,
		`{"v":2,"type":"hello","payload":{"lastSeq":-1}}`,
		`{"v":1,"type":"ping"}`,
		`{"type":"ping"}]`,
		`{"type":"ping","payload":null}`,
		`{"type":"job_progress"}`,
		`{"v":2}`,
		`[`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := protocol.DecodeClientFrame(data)
		if err != nil {
			var fe *protocol.ErrFrame
			if !errors.As(err, &fe) {
				t.Fatalf("error %T (%v) is not an *ErrFrame", err, err)
			}
			if env != nil {
				t.Fatalf("envelope %+v returned with error %v", env, err)
			}
			return
		}
		if len(data) > protocol.MaxFrameBytes {
			t.Fatalf("accepted a frame of %d bytes", len(data))
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		switch env.Type {
		case protocol.TypeHello, protocol.TypePing, protocol.TypePong:
		default:
			t.Fatalf("accepted client frame type %q", env.Type)
		}
		if env.V != 0 && env.V != protocol.Version {
			t.Fatalf("accepted version %d", env.V)
		}
		if len(env.Payload) > 0 && !bytes.HasPrefix(bytes.TrimSpace(env.Payload), []byte("{")) {
			t.Fatalf("accepted non-object payload %s", env.Payload)
		}
		if env.Type == protocol.TypeHello && len(env.Payload) > 0 {
			var h protocol.Hello
			if err := json.Unmarshal(env.Payload, &h); err != nil {
				t.Fatalf("accepted hello payload that does not decode: %v", err)
			}
			if err := h.Validate(); err != nil {
				t.Fatalf("accepted invalid hello: %v", err)
			}
		}
	})
}

func FuzzParseProducerEvents(f *testing.F) {
	for _, seed := range []string{
		`{"type":"started","payload":{"totalCount":500}}`,
		`{"type":"progress","payload":{"processedCount":10,"totalCount":500,"currentItem":"row","message":"m"}}`,
		`{"type":"completed","payload":{"successCount":1,"failureCount":2,"result":{"k":[1,{"x":"]"}]}}}`,
		`{"type":"failed","payload":{"code":"E_GEMINI_TIMEOUT","message":"slow","retryable":true,"details":{"provider":"gemini"}}}`,
		`[{"type":"started"},{"type":"error","payload":{"code":"E_X","details":null}},{"type":"completed"}]`,
		`{"type":"started","payload":null}`,
		`{"type":"progress","payload":{"processedCount":1,"s":"\"[[[\\"}}`,
		`[]`,
		`[[[[[[[[[[[[[[[[[[`,
		`{"type":"error","payload":{"code":"e_x"}}`,
		` `,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := protocol.ParseProducerEvents(body)
		if err != nil {
			var ve *protocol.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T (%v) is not a *ValidationError", err, err)
			}
			if events != nil {
				t.Fatalf("%d events returned with error %v", len(events), err)
			}
			return
		}
		if n := len(events); n == 0 || n > protocol.MaxEventsPerBatch {
			t.Fatalf("accepted %d events", n)
		}
		for i, ev := range events {
			if ev.MessageType() == "" {
				t.Fatalf("event %d: accepted type %q", i, ev.Type)
			}
			if len(ev.Payload) == 0 || ev.Payload[0] != '{' || !json.Valid(ev.Payload) {
				t.Fatalf("event %d: payload %q is not a JSON object", i, ev.Payload)
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(ev.Payload, &obj); err != nil {
				t.Fatalf("event %d: payload does not decode as an object: %v", i, err)
			}
			if len(ev.Payload) > protocol.MaxPayloadBytes {
				t.Fatalf("event %d: payload of %d bytes accepted", i, len(ev.Payload))
			}
			// Validation is idempotent: an accepted event stays accepted.
			again := ev
			if err := again.Validate(); err != nil {
				t.Fatalf("event %d: revalidation failed: %v", i, err)
			}
		}
	})
}
