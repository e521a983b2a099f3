package protocol

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	"github.com/jobcast/jobcast/internal/jsonscan"
)

// parseFast parses a trimmed producer body in the shape producers send at
// high rates, started and progress events with plain keys, in one pass: it
// validates the JSON, reads each payload's known fields once, and records
// the counts for ApplyEvents, where the general path decodes the body, then
// every payload twice more (checkFieldCase and Validate), and ApplyEvents a
// third time.
//
// It only accepts what the general path accepts, with the same result. When
// it is not sure (any other event type or key, an escape in a key, a value
// the general path would reject or decode differently) it returns ok false
// and the caller runs the general path, which also writes every error: the
// errors producers see come from one place. FuzzParseFastAgrees checks both
// halves of that promise.
func parseFast(body []byte) (events []ProducerEvent, ok bool) {
	// The events do not alias the caller's buffer, as json.Unmarshal's
	// copies did not; one copy serves every payload of the batch.
	s := fastScanner{jsonscan.Scanner{B: bytes.Clone(body), MaxDepth: MaxJSONDepth}}
	if len(s.B) == 0 {
		return nil, false
	}
	if s.B[0] != '[' {
		ev, ok := s.event()
		if !ok || s.I != len(s.B) {
			return nil, false
		}
		return []ProducerEvent{ev}, true
	}
	s.I++
	s.Depth = 1
	s.Space()
	// Batches of progress events are small objects, ~50 bytes each.
	events = make([]ProducerEvent, 0, min(len(s.B)/40+1, MaxEventsPerBatch))
	for {
		ev, ok := s.event()
		if !ok || len(events) == MaxEventsPerBatch {
			return nil, false
		}
		events = append(events, ev)
		s.Space()
		if s.I >= len(s.B) {
			return nil, false
		}
		c := s.B[s.I]
		s.I++
		if c == ']' {
			break
		}
		if c != ',' {
			return nil, false
		}
		s.Space()
	}
	if s.I != len(s.B) {
		return nil, false
	}
	return events, true
}

// fastScanner reads producer events and their payloads; every method
// returns false on anything it does not accept, including text that is not
// valid JSON.
type fastScanner struct{ jsonscan.Scanner }

// event reads one event object {"type":…,"payload":…}, the scanner on its
// first byte. Other keys, and duplicates, are left to the general path (it
// matches keys case-insensitively and keeps the last of duplicates).
func (s *fastScanner) event() (ev ProducerEvent, ok bool) {
	if s.I >= len(s.B) || s.B[s.I] != '{' {
		return ev, false
	}
	if s.Depth++; s.Depth > MaxJSONDepth {
		return ev, false
	}
	s.I++
	var payload []byte
	var typ string
	haveType, havePayload := false, false
	s.Space()
	if s.I < len(s.B) && s.B[s.I] == '}' {
		return ev, false // no type: an error
	}
	for {
		key, esc, _, ok := s.Str()
		if !ok || esc {
			return ev, false
		}
		s.Space()
		if s.I >= len(s.B) || s.B[s.I] != ':' {
			return ev, false
		}
		s.I++
		s.Space()
		switch string(key) {
		case "type":
			if haveType {
				return ev, false
			}
			haveType = true
			v, esc, _, ok := s.Str()
			if !ok || esc {
				return ev, false
			}
			switch string(v) {
			case EventStarted:
				typ = EventStarted
			case EventProgress:
				typ = EventProgress
			default:
				return ev, false
			}
		case "payload":
			if havePayload {
				return ev, false
			}
			havePayload = true
			start := s.I
			if !s.Value() {
				return ev, false
			}
			payload = s.B[start:s.I]
		default:
			return ev, false
		}
		s.Space()
		if s.I >= len(s.B) {
			return ev, false
		}
		c := s.B[s.I]
		s.I++
		if c == '}' {
			break
		}
		if c != ',' {
			return ev, false
		}
		s.Space()
	}
	s.Depth--
	if !haveType {
		return ev, false
	}
	ev.Type = typ
	if len(payload) == 0 || string(payload) == "null" {
		ev.Payload = []byte("{}")
		if typ == EventProgress {
			return ev, false // needs processedCount: an error
		}
		ev.setCounts(0, 0, false)
		return ev, true
	}
	if payload[0] != '{' || len(payload) > MaxPayloadBytes {
		return ev, false
	}
	ev.Payload = payload
	return ev, ev.readCounts()
}

// readCounts reads the known fields of ev's payload, a valid JSON object,
// and records its counts when the general path would accept them as they
// are.
func (e *ProducerEvent) readCounts() bool {
	s := fastScanner{jsonscan.Scanner{B: e.Payload, I: 1, MaxDepth: MaxJSONDepth}}
	known := knownFields[e.Type]
	var processed, total int64
	hasTotal := false
	var seen [4]bool // known[i] read
	s.Space()
	if s.B[s.I] == '}' {
		if e.Type == EventProgress {
			return false // needs processedCount
		}
		e.setCounts(0, 0, false)
		return true
	}
	for {
		key, esc, hi, ok := s.Str()
		if !ok || esc || hi {
			// An escaped or non-ASCII key may equal a known field once
			// decoded or folded (Unicode folds 'ſ' to 's').
			return false
		}
		s.Space()
		s.I++ // ':'; the payload is valid JSON
		s.Space()
		f := -1
		for i, name := range known {
			if string(key) == name {
				f = i
				break
			}
			if jsonscan.EqualFoldASCII(key, name) {
				return false // "ProcessedCount": an error
			}
		}
		switch {
		case f < 0:
			if !s.Value() {
				return false
			}
		case seen[f]:
			return false // a duplicate: the general path keeps the last one
		default:
			seen[f] = true
			switch known[f] {
			case "processedCount":
				n, null, ok := s.count()
				if !ok || null {
					return false
				}
				processed = n
			case "totalCount":
				n, null, ok := s.count()
				if !ok {
					return false
				}
				total, hasTotal = n, !null // null leaves the total as it is
			case "currentItem", "message":
				if !s.shortString(fieldLimit(known[f])) {
					return false
				}
			}
		}
		s.Space()
		c := s.B[s.I]
		s.I++
		if c == '}' {
			break
		}
		s.Space()
	}
	if e.Type == EventProgress && !seen[0] {
		return false // needs processedCount
	}
	e.setCounts(processed, total, hasTotal)
	return true
}

func fieldLimit(name string) int {
	if name == "currentItem" {
		return maxCurrentItemBytes
	}
	return maxErrorMessageLen
}

// count reads a count: a non-negative integer json.Unmarshal puts into an
// int64, or null.
func (s *fastScanner) count() (n int64, null, ok bool) {
	if s.I < len(s.B) && s.B[s.I] == 'n' {
		return 0, true, s.Value()
	}
	start := s.I
	for s.I < len(s.B) && s.B[s.I] >= '0' && s.B[s.I] <= '9' {
		s.I++
	}
	digits := s.B[start:s.I]
	if len(digits) == 0 || (digits[0] == '0' && len(digits) > 1) || len(digits) > 18 {
		return 0, false, false // not a plain count, or one ParseInt may refuse
	}
	if s.I < len(s.B) {
		switch s.B[s.I] {
		case '.', 'e', 'E':
			return 0, false, false
		}
	}
	n, err := strconv.ParseInt(string(digits), 10, 64)
	return n, false, err == nil
}

// shortString reads a string or null whose decoded text is at most limit
// bytes. Decoding never makes valid UTF-8 text longer (an escape is at least
// as long as what it stands for); invalid UTF-8 becomes U+FFFD, which can,
// so it goes to the general path.
func (s *fastScanner) shortString(limit int) bool {
	if s.I < len(s.B) && s.B[s.I] == 'n' {
		return s.Value()
	}
	v, _, hi, ok := s.Str()
	return ok && len(v) <= limit && (!hi || utf8.Valid(v))
}
