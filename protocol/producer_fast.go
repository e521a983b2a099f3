package protocol

import (
	"bytes"
	"strconv"
	"unicode/utf8"
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
	s := fastScanner{b: bytes.Clone(body)}
	if len(s.b) == 0 {
		return nil, false
	}
	if s.b[0] != '[' {
		ev, ok := s.event()
		if !ok || s.i != len(s.b) {
			return nil, false
		}
		return []ProducerEvent{ev}, true
	}
	s.i++
	s.depth = 1
	s.ws()
	// Batches of progress events are small objects, ~50 bytes each.
	events = make([]ProducerEvent, 0, min(len(s.b)/40+1, MaxEventsPerBatch))
	for {
		ev, ok := s.event()
		if !ok || len(events) == MaxEventsPerBatch {
			return nil, false
		}
		events = append(events, ev)
		s.ws()
		if s.i >= len(s.b) {
			return nil, false
		}
		c := s.b[s.i]
		s.i++
		if c == ']' {
			break
		}
		if c != ',' {
			return nil, false
		}
		s.ws()
	}
	if s.i != len(s.b) {
		return nil, false
	}
	return events, true
}

// fastScanner walks JSON text; every method returns false on anything it
// does not accept, including text that is not valid JSON.
type fastScanner struct {
	b     []byte
	i     int
	depth int
}

func (s *fastScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// event reads one event object {"type":…,"payload":…}, the scanner on its
// first byte. Other keys, and duplicates, are left to the general path (it
// matches keys case-insensitively and keeps the last of duplicates).
func (s *fastScanner) event() (ev ProducerEvent, ok bool) {
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return ev, false
	}
	if s.depth++; s.depth > MaxJSONDepth {
		return ev, false
	}
	s.i++
	var payload []byte
	var typ string
	haveType, havePayload := false, false
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		return ev, false // no type: an error
	}
	for {
		key, esc, _, ok := s.str()
		if !ok || esc {
			return ev, false
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return ev, false
		}
		s.i++
		s.ws()
		switch string(key) {
		case "type":
			if haveType {
				return ev, false
			}
			haveType = true
			v, esc, _, ok := s.str()
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
			start := s.i
			if !s.value() {
				return ev, false
			}
			payload = s.b[start:s.i]
		default:
			return ev, false
		}
		s.ws()
		if s.i >= len(s.b) {
			return ev, false
		}
		c := s.b[s.i]
		s.i++
		if c == '}' {
			break
		}
		if c != ',' {
			return ev, false
		}
		s.ws()
	}
	s.depth--
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
	s := fastScanner{b: e.Payload, i: 1}
	known := knownFields[e.Type]
	var processed, total int64
	hasTotal := false
	var seen [4]bool // known[i] read
	s.ws()
	if s.b[s.i] == '}' {
		if e.Type == EventProgress {
			return false // needs processedCount
		}
		e.setCounts(0, 0, false)
		return true
	}
	for {
		key, esc, hi, ok := s.str()
		if !ok || esc || hi {
			// An escaped or non-ASCII key may equal a known field once
			// decoded or folded (Unicode folds 'ſ' to 's').
			return false
		}
		s.ws()
		s.i++ // ':'; the payload is valid JSON
		s.ws()
		f := -1
		for i, name := range known {
			if string(key) == name {
				f = i
				break
			}
			if len(key) == len(name) && asciiEqualFold(key, name) {
				return false // "ProcessedCount": an error
			}
		}
		switch {
		case f < 0:
			if !s.value() {
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
		s.ws()
		c := s.b[s.i]
		s.i++
		if c == '}' {
			break
		}
		s.ws()
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
	if s.i < len(s.b) && s.b[s.i] == 'n' {
		return 0, true, s.value()
	}
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	digits := s.b[start:s.i]
	if len(digits) == 0 || (digits[0] == '0' && len(digits) > 1) || len(digits) > 18 {
		return 0, false, false // not a plain count, or one ParseInt may refuse
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
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
	if s.i < len(s.b) && s.b[s.i] == 'n' {
		return s.value()
	}
	v, _, hi, ok := s.str()
	return ok && len(v) <= limit && (!hi || utf8.Valid(v))
}

// str reads a JSON string and returns its raw contents, whether they hold an
// escape or a byte outside ASCII.
func (s *fastScanner) str() (raw []byte, esc, hi, ok bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false, false, false
	}
	s.i++
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, esc, hi, true
		case c == '\\':
			esc = true
			s.i++
			if s.i >= len(s.b) {
				return nil, false, false, false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if s.i+4 >= len(s.b) {
					return nil, false, false, false
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !isHex(h) {
						return nil, false, false, false
					}
				}
				s.i += 5
			default:
				return nil, false, false, false
			}
		case c < 0x20:
			return nil, false, false, false
		default:
			if c >= utf8.RuneSelf {
				hi = true
			}
			s.i++
		}
	}
	return nil, false, false, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// value skips one JSON value, checking it as encoding/json's scanner does
// and its nesting as CheckJSONDepth does.
func (s *fastScanner) value() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, _, _, ok := s.str()
		return ok
	case c == '{' || c == '[':
		if s.depth++; s.depth > MaxJSONDepth {
			return false
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		s.i++
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == closer {
			s.i++
			s.depth--
			return true
		}
		for {
			if c == '{' {
				if _, _, _, ok := s.str(); !ok {
					return false
				}
				s.ws()
				if s.i >= len(s.b) || s.b[s.i] != ':' {
					return false
				}
				s.i++
				s.ws()
			}
			if !s.value() {
				return false
			}
			s.ws()
			if s.i >= len(s.b) {
				return false
			}
			d := s.b[s.i]
			s.i++
			if d == closer {
				s.depth--
				return true
			}
			if d != ',' {
				return false
			}
			s.ws()
		}
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

func (s *fastScanner) literal(lit string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return false
	}
	s.i += len(lit)
	return true
}

// number skips a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *fastScanner) number() bool {
	if s.b[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

func (s *fastScanner) digits() int {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}

// asciiEqualFold is strings.EqualFold for an ASCII key and field name of
// equal length.
func asciiEqualFold(key []byte, name string) bool {
	for i := range len(key) {
		a, b := key[i], name[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}
