package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Producer event types accepted by POST /v1/jobs/{jobId}/events.
const (
	EventStarted   = "started"
	EventProgress  = "progress"
	EventCompleted = "completed"
	EventFailed    = "failed"
	EventError     = "error"
)

// Limits on producer input. They keep one job's state and messages small
// enough to replay to every reconnecting client.
const (
	MaxEventsPerBatch   = 1000
	MaxPayloadBytes     = 16 << 10
	MaxResultBytes      = 8 << 10
	MaxMetadataBytes    = 8 << 10
	MaxJSONDepth        = 16
	maxErrorCodeLen     = 64
	maxErrorMessageLen  = 1024
	maxCurrentItemBytes = 512
)

// errorCodeRE is the shape of an error code: E_ followed by upper-case words.
var errorCodeRE = regexp.MustCompile(`^E_[A-Z0-9_]{1,61}$`)

// ProducerEvent is one event a producer sends about a job.
type ProducerEvent struct {
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`

	// countsOf is &Payload[0] when processed, total and hasTotal hold what
	// ParseProducerEvents read from Payload (see Counts); a payload replaced
	// since then no longer matches it.
	countsOf         *byte
	processed, total int64
	hasTotal         bool
}

// Counts returns the processedCount and totalCount (hasTotal: present and
// not null) of a started or progress event as ParseProducerEvents read
// them, so that applying the event needs no second decoding of its payload.
// ok is false when they were not recorded, for an event built in Go or one
// the parser's general path read: the caller decodes Payload then.
func (e *ProducerEvent) Counts() (processed, total int64, hasTotal, ok bool) {
	if e.countsOf == nil || len(e.Payload) == 0 || &e.Payload[0] != e.countsOf {
		return 0, 0, false, false
	}
	return e.processed, e.total, e.hasTotal, true
}

func (e *ProducerEvent) setCounts(processed, total int64, hasTotal bool) {
	e.countsOf = &e.Payload[0]
	e.processed, e.total, e.hasTotal = processed, total, hasTotal
}

// MessageType is the client-facing message type of a producer event.
func (e *ProducerEvent) MessageType() string {
	switch e.Type {
	case EventStarted:
		return TypeJobStarted
	case EventProgress:
		return TypeJobProgress
	case EventCompleted:
		return TypeJobCompleted
	case EventFailed:
		return TypeJobFailed
	case EventError:
		return TypeError
	}
	return ""
}

// ValidationError is a producer input error whose text is safe to return.
type ValidationError struct{ Msg string }

func (e *ValidationError) Error() string { return e.Msg }

func invalid(format string, args ...any) error {
	return &ValidationError{Msg: fmt.Sprintf(format, args...)}
}

// ParseProducerEvents parses the body of POST /v1/jobs/{jobId}/events: one
// event object or an array of them. Every event is validated; the first
// invalid one fails the whole batch with a *ValidationError naming its index.
func ParseProducerEvents(body []byte) ([]ProducerEvent, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, invalid("empty body: send an event object or an array of them")
	}
	if events, ok := parseFast(body); ok {
		return events, nil
	}
	return parseGeneral(body)
}

// parseGeneral is ParseProducerEvents for any input, the one that writes
// every error; parseFast only takes shapes it is sure of.
func parseGeneral(body []byte) ([]ProducerEvent, error) {
	if err := CheckJSONDepth(body, MaxJSONDepth); err != nil {
		return nil, err
	}
	var events []ProducerEvent
	if body[0] == '[' {
		if err := json.Unmarshal(body, &events); err != nil {
			return nil, invalid("malformed JSON: %s", jsonErrText(err))
		}
		if len(events) == 0 {
			return nil, invalid("empty batch")
		}
		if len(events) > MaxEventsPerBatch {
			return nil, invalid("batch of %d events exceeds %d", len(events), MaxEventsPerBatch)
		}
	} else {
		var ev ProducerEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			return nil, invalid("malformed JSON: %s", jsonErrText(err))
		}
		events = []ProducerEvent{ev}
	}
	for i := range events {
		if err := events[i].Validate(); err != nil {
			if len(events) > 1 {
				return nil, invalid("event %d: %s", i, err.Error())
			}
			return nil, err
		}
	}
	return events, nil
}

// Validate checks the event's type and payload fields.
func (e *ProducerEvent) Validate() error {
	if e.MessageType() == "" {
		return invalid("unknown event type %q (want started, progress, completed, failed or error)", e.Type)
	}
	p := bytes.TrimSpace(e.Payload)
	if len(p) == 0 || bytes.Equal(p, []byte("null")) {
		p = []byte("{}")
	}
	if p[0] != '{' {
		return invalid("payload must be a JSON object")
	}
	if len(p) > MaxPayloadBytes {
		return invalid("payload of %d bytes exceeds %d", len(p), MaxPayloadBytes)
	}
	e.Payload = json.RawMessage(p)
	if err := checkFieldCase(p, knownFields[e.Type]); err != nil {
		return err
	}
	switch e.Type {
	case EventStarted:
		var s struct {
			TotalCount *int64 `json:"totalCount"`
		}
		if err := json.Unmarshal(p, &s); err != nil {
			return invalid("started payload: %s", jsonErrText(err))
		}
		if s.TotalCount != nil && *s.TotalCount < 0 {
			return invalid("totalCount must be >= 0")
		}
	case EventProgress:
		var s struct {
			ProcessedCount *int64  `json:"processedCount"`
			TotalCount     *int64  `json:"totalCount"`
			CurrentItem    *string `json:"currentItem"`
			Message        *string `json:"message"`
		}
		if err := json.Unmarshal(p, &s); err != nil {
			return invalid("progress payload: %s", jsonErrText(err))
		}
		if s.ProcessedCount == nil {
			return invalid("progress payload needs processedCount")
		}
		if *s.ProcessedCount < 0 || (s.TotalCount != nil && *s.TotalCount < 0) {
			return invalid("counts must be >= 0")
		}
		if s.CurrentItem != nil && len(*s.CurrentItem) > maxCurrentItemBytes {
			return invalid("currentItem longer than %d bytes", maxCurrentItemBytes)
		}
		if s.Message != nil && len(*s.Message) > maxErrorMessageLen {
			return invalid("message longer than %d bytes", maxErrorMessageLen)
		}
	case EventCompleted:
		var s struct {
			SuccessCount *int64          `json:"successCount"`
			FailureCount *int64          `json:"failureCount"`
			Result       json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(p, &s); err != nil {
			return invalid("completed payload: %s", jsonErrText(err))
		}
		if (s.SuccessCount != nil && *s.SuccessCount < 0) || (s.FailureCount != nil && *s.FailureCount < 0) {
			return invalid("counts must be >= 0")
		}
		if r := bytes.TrimSpace(s.Result); len(r) > 0 && !bytes.Equal(r, []byte("null")) {
			if r[0] != '{' {
				return invalid("result must be a JSON object")
			}
			if len(r) > MaxResultBytes {
				return invalid("result of %d bytes exceeds %d", len(r), MaxResultBytes)
			}
		}
	case EventFailed, EventError:
		var s struct {
			Code      *string         `json:"code"`
			Message   *string         `json:"message"`
			Retryable *bool           `json:"retryable"`
			Details   json.RawMessage `json:"details"`
		}
		if err := json.Unmarshal(p, &s); err != nil {
			return invalid("%s payload: %s", e.Type, jsonErrText(err))
		}
		if s.Code == nil || *s.Code == "" {
			return invalid("%s payload needs code (for example E_GEMINI_TIMEOUT)", e.Type)
		}
		if len(*s.Code) > maxErrorCodeLen || !errorCodeRE.MatchString(*s.Code) {
			return invalid("code %q must look like E_UPPER_CASE", truncate(*s.Code, 70))
		}
		if s.Message != nil && len(*s.Message) > maxErrorMessageLen {
			return invalid("message longer than %d bytes", maxErrorMessageLen)
		}
		if d := bytes.TrimSpace(s.Details); len(d) > 0 && !bytes.Equal(d, []byte("null")) && d[0] != '{' {
			return invalid("details must be a JSON object")
		}
	}
	return nil
}

// knownFields are the payload fields jobcast reads, per event type.
var knownFields = map[string][]string{
	EventStarted:   {"totalCount"},
	EventProgress:  {"processedCount", "totalCount", "currentItem", "message"},
	EventCompleted: {"successCount", "failureCount", "result"},
	EventFailed:    {"code", "message", "retryable", "details"},
	EventError:     {"code", "message", "retryable", "details"},
}

// checkFieldCase rejects a payload key that matches a known field only when
// case is ignored ("ProcessedCount"): Go's decoder would accept it, but the
// payload is forwarded verbatim and clients in other languages would not
// find the field.
func checkFieldCase(payload []byte, fields []string) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(payload, &keys); err != nil {
		return invalid("payload: %s", jsonErrText(err))
	}
	for k := range keys {
		for _, f := range fields {
			if k != f && strings.EqualFold(k, f) {
				return invalid("payload field %q must be spelled %q", k, f)
			}
		}
	}
	return nil
}

// CheckJSONDepth rejects JSON nested deeper than max; it runs before decoding
// so that a hostile body cannot make the decoder recurse deeply.
func CheckJSONDepth(data []byte, max int) error {
	depth := 0
	inString, escaped := false, false
	for _, c := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > max {
				return invalid("JSON nested deeper than %d levels", max)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

func jsonErrText(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Sprintf("syntax error at byte %d", e.Offset)
	case *json.UnmarshalTypeError:
		if e.Field != "" {
			return fmt.Sprintf("field %s must be %s", e.Field, e.Type.String())
		}
		// The target is an event struct; its Go type name means nothing
		// to a producer.
		return fmt.Sprintf("each event must be a JSON object, got %s", e.Value)
	}
	return "invalid JSON"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
