package protocol_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jobcast/jobcast/protocol"
)

// nested returns a JSON value of n nested objects: {"a":{"a":…{}…}}.
func nested(n int) string {
	if n == 0 {
		return `1`
	}
	return strings.Repeat(`{"a":`, n-1) + `{}` + strings.Repeat(`}`, n-1)
}

// batch returns a JSON array of n progress events.
func batch(n int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"progress","payload":{"processedCount":%d}}`, i)
	}
	b.WriteByte(']')
	return b.String()
}

// wantValidationError fails t unless err is a *ValidationError whose text
// contains want.
func wantValidationError(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	var ve *protocol.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %T (%v), want *protocol.ValidationError", err, err)
	}
	if !strings.Contains(ve.Msg, want) {
		t.Fatalf("error %q does not contain %q", ve.Msg, want)
	}
}

func TestParseProducerEventsValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		body         string
		wantTypes    []string // message types, in order
		wantPayloads []string // exact payloads, when set
	}{
		{name: "started", body: `{"type":"started","payload":{"totalCount":500}}`, wantTypes: []string{protocol.TypeJobStarted}, wantPayloads: []string{`{"totalCount":500}`}},
		{name: "no payload becomes empty object", body: `{"type":"started"}`, wantTypes: []string{protocol.TypeJobStarted}, wantPayloads: []string{`{}`}},
		{name: "null payload becomes empty object", body: `{"type":"started","payload":null}`, wantTypes: []string{protocol.TypeJobStarted}, wantPayloads: []string{`{}`}},
		{name: "surrounding whitespace", body: "\n\t {\"type\":\"started\"} \n", wantTypes: []string{protocol.TypeJobStarted}},
		{name: "progress, all fields and extras kept", body: `{"type":"progress","payload":{"processedCount":10,"totalCount":500,"currentItem":"row 10","message":"importing","eta":3}}`,
			wantTypes: []string{protocol.TypeJobProgress}, wantPayloads: []string{`{"processedCount":10,"totalCount":500,"currentItem":"row 10","message":"importing","eta":3}`}},
		{name: "progress currentItem at limit", body: `{"type":"progress","payload":{"processedCount":0,"currentItem":"` + strings.Repeat("i", 512) + `"}}`, wantTypes: []string{protocol.TypeJobProgress}},
		{name: "completed with result", body: `{"type":"completed","payload":{"successCount":498,"failureCount":2,"result":{"url":"s3://x"}}}`, wantTypes: []string{protocol.TypeJobCompleted}},
		{name: "completed null result", body: `{"type":"completed","payload":{"result":null}}`, wantTypes: []string{protocol.TypeJobCompleted}},
		{name: "failed", body: `{"type":"failed","payload":{"code":"E_GEMINI_TIMEOUT","message":"slow","retryable":true,"details":{"provider":"gemini"}}}`, wantTypes: []string{protocol.TypeJobFailed}},
		{name: "error, null details", body: `{"type":"error","payload":{"code":"E_ENRICHMENT_FAILED","details":null}}`, wantTypes: []string{protocol.TypeError}},
		{name: "longest code", body: `{"type":"error","payload":{"code":"E_` + strings.Repeat("A", 61) + `"}}`, wantTypes: []string{protocol.TypeError}},
		{name: "message at limit", body: `{"type":"error","payload":{"code":"E_X","message":"` + strings.Repeat("m", 1024) + `"}}`, wantTypes: []string{protocol.TypeError}},
		{
			name:      "array batch keeps order",
			body:      `[{"type":"started"},{"type":"progress","payload":{"processedCount":1}},{"type":"error","payload":{"code":"E_X"}},{"type":"completed"}]`,
			wantTypes: []string{protocol.TypeJobStarted, protocol.TypeJobProgress, protocol.TypeError, protocol.TypeJobCompleted},
		},
		{name: "single-element array", body: `[{"type":"started"}]`, wantTypes: []string{protocol.TypeJobStarted}},
		{name: "depth at limit", body: `{"type":"progress","payload":{"processedCount":1,"x":` + nested(protocol.MaxJSONDepth-2) + `}}`, wantTypes: []string{protocol.TypeJobProgress}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			events, err := protocol.ParseProducerEvents([]byte(tt.body))
			if err != nil {
				t.Fatalf("ParseProducerEvents: %v", err)
			}
			if len(events) != len(tt.wantTypes) {
				t.Fatalf("got %d events, want %d", len(events), len(tt.wantTypes))
			}
			for i, ev := range events {
				if got := ev.MessageType(); got != tt.wantTypes[i] {
					t.Errorf("event %d: MessageType() = %q, want %q", i, got, tt.wantTypes[i])
				}
				if i < len(tt.wantPayloads) && string(ev.Payload) != tt.wantPayloads[i] {
					t.Errorf("event %d: payload %s, want %s", i, ev.Payload, tt.wantPayloads[i])
				}
			}
		})
	}
}

func TestParseProducerEventsBatchLimit(t *testing.T) {
	t.Parallel()
	events, err := protocol.ParseProducerEvents([]byte(batch(protocol.MaxEventsPerBatch)))
	if err != nil {
		t.Fatalf("batch of %d: %v", protocol.MaxEventsPerBatch, err)
	}
	if len(events) != protocol.MaxEventsPerBatch {
		t.Fatalf("got %d events, want %d", len(events), protocol.MaxEventsPerBatch)
	}
	if string(events[999].Payload) != `{"processedCount":999}` {
		t.Fatalf("last event payload %s", events[999].Payload)
	}
	_, err = protocol.ParseProducerEvents([]byte(batch(protocol.MaxEventsPerBatch + 1)))
	wantValidationError(t, err, "batch of 1001 events exceeds 1000")
}

func TestParseProducerEventsInvalid(t *testing.T) {
	t.Parallel()
	longCode := "E_" + strings.Repeat("A", 62)
	tests := []struct {
		name string
		body string
		want string // exact error text
	}{
		{name: "empty body", body: ``, want: "empty body: send an event object or an array of them"},
		{name: "blank body", body: " \n\t", want: "empty body: send an event object or an array of them"},
		{name: "empty array", body: `[]`, want: "empty batch"},
		{name: "truncated object", body: `{"type":"started"`, want: "malformed JSON: syntax error at byte 17"},
		{name: "truncated array", body: `[{"type":"started"}`, want: "malformed JSON: syntax error at byte 19"},
		{name: "type is a number", body: `{"type":5}`, want: "malformed JSON: field type must be string"},
		{name: "array of numbers", body: `[1,2]`, want: "malformed JSON: each event must be a JSON object, got number"},
		{name: "body is a string", body: `"started"`, want: "malformed JSON: each event must be a JSON object, got string"},
		{name: "missing type", body: `{"payload":{}}`, want: `unknown event type "" (want started, progress, completed, failed or error)`},
		{name: "unknown type", body: `{"type":"paused"}`, want: `unknown event type "paused" (want started, progress, completed, failed or error)`},
		{name: "message type instead of event type", body: `{"type":"job_started"}`, want: `unknown event type "job_started" (want started, progress, completed, failed or error)`},
		{name: "payload array", body: `{"type":"started","payload":[1]}`, want: "payload must be a JSON object"},
		{name: "payload string", body: `{"type":"started","payload":"x"}`, want: "payload must be a JSON object"},
		{name: "payload too big", body: `{"type":"progress","payload":{"processedCount":1,"blob":"` + strings.Repeat("b", protocol.MaxPayloadBytes) + `"}}`, want: "payload of 16414 bytes exceeds 16384"},
		{name: "started negative total", body: `{"type":"started","payload":{"totalCount":-1}}`, want: "totalCount must be >= 0"},
		{name: "started total is a string", body: `{"type":"started","payload":{"totalCount":"5"}}`, want: "started payload: field totalCount must be int64"},
		{name: "progress needs processedCount", body: `{"type":"progress","payload":{"totalCount":5}}`, want: "progress payload needs processedCount"},
		{name: "field case must match", body: `{"type":"progress","payload":{"PROCESSEDCOUNT":5}}`, want: `payload field "PROCESSEDCOUNT" must be spelled "processedCount"`},
		{name: "case variant beside the field", body: `{"type":"progress","payload":{"processedCount":1,"ProcessedCount":5}}`, want: `payload field "ProcessedCount" must be spelled "processedCount"`},
		{name: "error code case", body: `{"type":"error","payload":{"Code":"E_X"}}`, want: `payload field "Code" must be spelled "code"`},
		{name: "progress null processedCount", body: `{"type":"progress","payload":{"processedCount":null}}`, want: "progress payload needs processedCount"},
		{name: "progress fractional count", body: `{"type":"progress","payload":{"processedCount":1.5}}`, want: "progress payload: field processedCount must be int64"},
		{name: "progress negative processed", body: `{"type":"progress","payload":{"processedCount":-1}}`, want: "counts must be >= 0"},
		{name: "progress negative total", body: `{"type":"progress","payload":{"processedCount":1,"totalCount":-5}}`, want: "counts must be >= 0"},
		{name: "progress currentItem too long", body: `{"type":"progress","payload":{"processedCount":1,"currentItem":"` + strings.Repeat("i", 513) + `"}}`, want: "currentItem longer than 512 bytes"},
		{name: "progress message too long", body: `{"type":"progress","payload":{"processedCount":1,"message":"` + strings.Repeat("m", 1025) + `"}}`, want: "message longer than 1024 bytes"},
		{name: "completed negative success", body: `{"type":"completed","payload":{"successCount":-1}}`, want: "counts must be >= 0"},
		{name: "completed negative failure", body: `{"type":"completed","payload":{"failureCount":-2}}`, want: "counts must be >= 0"},
		{name: "completed result array", body: `{"type":"completed","payload":{"result":[1]}}`, want: "result must be a JSON object"},
		{name: "completed result string", body: `{"type":"completed","payload":{"result":"done"}}`, want: "result must be a JSON object"},
		{name: "completed result too big", body: `{"type":"completed","payload":{"result":{"x":"` + strings.Repeat("r", protocol.MaxResultBytes) + `"}}}`, want: "result of 8200 bytes exceeds 8192"},
		{name: "failed needs code", body: `{"type":"failed","payload":{"message":"boom"}}`, want: "failed payload needs code (for example E_GEMINI_TIMEOUT)"},
		{name: "error needs code", body: `{"type":"error"}`, want: "error payload needs code (for example E_GEMINI_TIMEOUT)"},
		{name: "empty code", body: `{"type":"error","payload":{"code":""}}`, want: "error payload needs code (for example E_GEMINI_TIMEOUT)"},
		{name: "lower-case code", body: `{"type":"failed","payload":{"code":"e_timeout"}}`, want: `code "e_timeout" must look like E_UPPER_CASE`},
		{name: "code without prefix", body: `{"type":"failed","payload":{"code":"TIMEOUT"}}`, want: `code "TIMEOUT" must look like E_UPPER_CASE`},
		{name: "bare prefix", body: `{"type":"failed","payload":{"code":"E_"}}`, want: `code "E_" must look like E_UPPER_CASE`},
		{name: "code with dash", body: `{"type":"error","payload":{"code":"E_A-B"}}`, want: `code "E_A-B" must look like E_UPPER_CASE`},
		{name: "code too long", body: `{"type":"error","payload":{"code":"` + longCode + `"}}`, want: `code "` + longCode + `" must look like E_UPPER_CASE`},
		{name: "code is a number", body: `{"type":"error","payload":{"code":5}}`, want: "error payload: field code must be string"},
		{name: "error message too long", body: `{"type":"error","payload":{"code":"E_X","message":"` + strings.Repeat("m", 1025) + `"}}`, want: "message longer than 1024 bytes"},
		{name: "retryable not a bool", body: `{"type":"failed","payload":{"code":"E_X","retryable":"yes"}}`, want: "failed payload: field retryable must be bool"},
		{name: "details array", body: `{"type":"failed","payload":{"code":"E_X","details":["gemini"]}}`, want: "details must be a JSON object"},
		{name: "too deep", body: `{"type":"progress","payload":{"processedCount":1,"x":` + nested(protocol.MaxJSONDepth-1) + `}}`, want: "JSON nested deeper than 16 levels"},
		{name: "too deep array", body: strings.Repeat("[", 17) + strings.Repeat("]", 17), want: "JSON nested deeper than 16 levels"},
		{name: "bad event in batch is named", body: `[{"type":"started"},{"type":"progress","payload":{"processedCount":1}},{"type":"progress","payload":{}}]`, want: "event 2: progress payload needs processedCount"},
		{name: "first bad event in batch wins", body: `[{"type":"nope"},{"type":"error"}]`, want: `event 0: unknown event type "nope" (want started, progress, completed, failed or error)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			events, err := protocol.ParseProducerEvents([]byte(tt.body))
			if events != nil {
				t.Fatalf("got %d events with error %v, want none", len(events), err)
			}
			wantValidationError(t, err, tt.want)
			if err.Error() != tt.want {
				t.Fatalf("error %q, want exactly %q", err.Error(), tt.want)
			}
		})
	}
}

func TestProducerEventMessageType(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		protocol.EventStarted:   protocol.TypeJobStarted,
		protocol.EventProgress:  protocol.TypeJobProgress,
		protocol.EventCompleted: protocol.TypeJobCompleted,
		protocol.EventFailed:    protocol.TypeJobFailed,
		protocol.EventError:     protocol.TypeError,
		"":                      "",
		"Started":               "",
		"job_started":           "",
	}
	for typ, want := range tests {
		ev := protocol.ProducerEvent{Type: typ}
		if got := ev.MessageType(); got != want {
			t.Errorf("MessageType() of %q = %q, want %q", typ, got, want)
		}
	}
}

func TestCheckJSONDepth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		data    string
		max     int
		wantErr bool
	}{
		{name: "flat", data: `{"a":1}`, max: 1},
		{name: "at limit", data: `{"a":[{"b":1}]}`, max: 3},
		{name: "over limit", data: `{"a":[{"b":1}]}`, max: 2, wantErr: true},
		{name: "siblings do not add up", data: `[[],[],[],{},{}]`, max: 2},
		{name: "brackets inside a string", data: `{"a":"[[[[{{{{[[[["}`, max: 1},
		{name: "escaped quote keeps the string open", data: `{"a":"\"[[[[{{{{"}`, max: 1},
		{name: "escaped quotes then brackets", data: `["\"", "\"[[[[", "]]]]\""]`, max: 1},
		{name: "escaped backslash closes the string", data: `{"a":"\\","b":[[[1]]]}`, max: 3, wantErr: true},
		{name: "escaped backslash at limit", data: `{"a":"\\","b":[[1]]}`, max: 3},
		{name: "unicode escape", data: `{"a":"\u005b\u005b","b":[1]}`, max: 2},
		{name: "deep array", data: strings.Repeat("[", 20) + strings.Repeat("]", 20), max: 19, wantErr: true},
		{name: "empty input", data: ``, max: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if !json.Valid([]byte(tt.data)) && tt.data != "" {
				t.Fatalf("test input %s is not valid JSON", tt.data)
			}
			err := protocol.CheckJSONDepth([]byte(tt.data), tt.max)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("CheckJSONDepth(%s, %d) = %v, want nil", tt.data, tt.max, err)
				}
				return
			}
			wantValidationError(t, err, fmt.Sprintf("JSON nested deeper than %d levels", tt.max))
		})
	}
}
