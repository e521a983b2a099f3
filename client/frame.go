package client

import (
	"bytes"
	"encoding/json"

	"github.com/jobcast/jobcast/protocol"
)

// The watcher reads every frame in one pass: decodeServerFrame finds the
// envelope's fields and the payload's extent without encoding/json, and a
// progress payload's counts are read by the same scanner. encoding/json
// would validate the frame, decode the envelope, then validate and decode
// the payload again: at tens of thousands of frames a second (a load
// generator, a dashboard watching many jobs) that doubled the client's CPU.
// Anything the scanner does not expect (an escaped string, a count that is
// not an integer, a malformed frame) falls back to encoding/json, so the
// results are the same either way (TestDecodeServerFrameMatchesJSON).

// decodeServerFrame decodes a server frame into env, falling back to
// protocol.DecodeServerFrame. env.Payload aliases data.
func decodeServerFrame(data []byte, env *protocol.Envelope) error {
	var n names
	return n.decode(data, env)
}

// names keeps the last job ID and pipeline a connection's frames carried,
// so that decoding a frame of the same job allocates no strings for them.
type names struct{ jobID, pipeline string }

// decode is decodeServerFrame reusing n's strings.
func (n *names) decode(data []byte, env *protocol.Envelope) error {
	if fastEnvelope(data, env, n) {
		return nil
	}
	e, err := protocol.DecodeServerFrame(data)
	if err != nil {
		return err
	}
	*env = *e
	return nil
}

// fastEnvelope reads a frame as the server writes it: one object of plain
// strings, integers and a payload value. It reports false, leaving env in
// any state, when the frame needs the full decoder.
func fastEnvelope(data []byte, env *protocol.Envelope, n *names) bool {
	*env = protocol.Envelope{}
	s := scanner{b: data}
	ok := s.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "v":
			var v int64
			v, ok = s.int()
			env.V = int(v)
		case "type":
			var b []byte
			b, ok = s.rawString()
			env.Type = typeName(b)
		case "jobId":
			var b []byte
			b, ok = s.rawString()
			env.JobID = reuse(b, &n.jobID)
		case "pipeline":
			var b []byte
			b, ok = s.rawString()
			env.Pipeline = reuse(b, &n.pipeline)
		case "seq":
			env.Seq, ok = s.int()
		case "ts":
			env.TS, ok = s.int()
		case "payload":
			start := s.i
			ok = s.skip()
			env.Payload = json.RawMessage(data[start:s.i])
		default:
			// encoding/json matches keys without regard to case
			// ("seQ" sets Seq): leave such a key to it.
			ok = !foldsTo(key, "v", "type", "jobId", "pipeline", "seq", "ts", "payload") && s.skip()
		}
		return ok
	})
	if !ok || env.Type == "" {
		return false
	}
	s.space()
	return s.i == len(s.b)
}

// typeName returns the protocol's constant for a known frame type, without
// allocating.
func typeName(b []byte) string {
	switch string(b) {
	case protocol.TypeJobProgress:
		return protocol.TypeJobProgress
	case protocol.TypePing:
		return protocol.TypePing
	case protocol.TypeJobStarted:
		return protocol.TypeJobStarted
	case protocol.TypeJobCompleted:
		return protocol.TypeJobCompleted
	case protocol.TypeJobFailed:
		return protocol.TypeJobFailed
	case protocol.TypeError:
		return protocol.TypeError
	case protocol.TypeReady:
		return protocol.TypeReady
	case protocol.TypePong:
		return protocol.TypePong
	}
	return string(b)
}

// reuse returns *prev when it equals b, else a new string, which it keeps
// in *prev.
func reuse(b []byte, prev *string) string {
	if *prev != string(b) {
		*prev = string(b)
	}
	return *prev
}

// decodeProgress reads a progress payload's counts (all the watcher's state
// takes from it), falling back to encoding/json for anything but plain
// integers.
func decodeProgress(payload []byte, p *protocol.Progress) {
	var processed, total int64
	s := scanner{b: payload}
	ok := s.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "processedCount":
			processed, ok = s.int()
		case "totalCount":
			total, ok = s.int()
		default:
			ok = !foldsTo(key, "processedCount", "totalCount") && s.skip()
		}
		return ok
	})
	s.space()
	if ok && s.i == len(s.b) {
		p.ProcessedCount, p.TotalCount = processed, total
		return
	}
	_ = json.Unmarshal(payload, p)
}

// foldsTo reports whether key equals one of names without regard to case,
// as encoding/json matches object keys to fields.
func foldsTo(key []byte, names ...string) bool {
	for _, n := range names {
		if bytes.EqualFold(key, []byte(n)) {
			return true
		}
	}
	return false
}

// scanner walks JSON text. It accepts a subset (no escapes in what it
// decodes, integers only where it reads numbers) and checks structure
// while skipping, so what it accepts encoding/json decodes the same way.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) consume(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object calls field for each key, positioned at its value, which field
// must consume.
func (s *scanner) object(field func(key []byte) bool) bool {
	if !s.consume('{') {
		return false
	}
	if s.consume('}') {
		return true
	}
	for {
		s.space()
		key, ok := s.rawString()
		if !ok || !s.consume(':') {
			return false
		}
		s.space()
		if !field(key) {
			return false
		}
		if s.consume('}') {
			return true
		}
		if !s.consume(',') {
			return false
		}
	}
}

// rawString reads a string without escapes and returns its bytes.
func (s *scanner) rawString() ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		c := s.b[j]
		if c == '"' {
			s.i = j + 1
			return s.b[start:j], true
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			return nil, false // escapes and non-ASCII: the full decoder
		}
	}
	return nil, false
}

// int reads an integer that fits int64.
func (s *scanner) int() (int64, bool) {
	neg := s.i < len(s.b) && s.b[s.i] == '-'
	if neg {
		s.i++
	}
	start := s.i
	var v int64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		if v > (1<<63-1-9)/10 {
			return 0, false
		}
		v = v*10 + int64(s.b[s.i]-'0')
		s.i++
	}
	n := s.i - start
	if n == 0 || (n > 1 && s.b[start] == '0') {
		return 0, false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	if neg {
		v = -v
	}
	return v, true
}

// skip passes over one value of any kind, strings with escapes included.
func (s *scanner) skip() bool {
	s.space()
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(func([]byte) bool { return s.skip() })
	case c == '[':
		s.i++
		if s.consume(']') {
			return true
		}
		for {
			if !s.skip() {
				return false
			}
			if s.consume(']') {
				return true
			}
			if !s.consume(',') {
				return false
			}
		}
	case c == '"':
		for j := s.i + 1; j < len(s.b); j++ {
			switch s.b[j] {
			case '\\':
				if j++; j >= len(s.b) {
					return false
				}
				switch s.b[j] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				case 'u':
					if j+4 >= len(s.b) || !isHex4(s.b[j+1:j+5]) {
						return false
					}
					j += 4
				default:
					return false
				}
			case '"':
				s.i = j + 1
				return true
			default:
				if s.b[j] < 0x20 {
					return false
				}
			}
		}
		return false
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return s.number()
	}
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// number passes over a JSON number.
func (s *scanner) number() bool {
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	intStart := s.i
	n := digits()
	if n == 0 || (n > 1 && s.b[intStart] == '0') {
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return s.i > start
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
