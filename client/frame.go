package client

import (
	"bytes"
	"encoding/json"

	"github.com/jobcast/jobcast/internal/jsonscan"
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
	s := scanner{jsonscan.Scanner{B: data}}
	ok := s.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "v":
			var v int64
			v, ok = s.Int()
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
			env.Seq, ok = s.Int()
		case "ts":
			env.TS, ok = s.Int()
		case "payload":
			start := s.I
			ok = s.skip()
			env.Payload = json.RawMessage(data[start:s.I])
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
	s.Space()
	return s.I == len(s.B)
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
	s := scanner{jsonscan.Scanner{B: payload}}
	ok := s.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "processedCount":
			processed, ok = s.Int()
		case "totalCount":
			total, ok = s.Int()
		default:
			ok = !foldsTo(key, "processedCount", "totalCount") && s.skip()
		}
		return ok
	})
	s.Space()
	if ok && s.I == len(s.B) {
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

// scanner reads the envelope and a progress payload. It decodes a subset
// (no escapes in what it decodes, integers only where it reads numbers) and
// checks everything it skips, so what it accepts encoding/json decodes the
// same way.
type scanner struct{ jsonscan.Scanner }

// object calls field for each key, positioned at its value, which field
// must consume.
func (s *scanner) object(field func(key []byte) bool) bool {
	if !s.Consume('{') {
		return false
	}
	if s.Consume('}') {
		return true
	}
	for {
		s.Space()
		key, ok := s.rawString()
		if !ok || !s.Consume(':') {
			return false
		}
		s.Space()
		if !field(key) {
			return false
		}
		if s.Consume('}') {
			return true
		}
		if !s.Consume(',') {
			return false
		}
	}
}

// rawString reads a string without escapes or non-ASCII bytes (those go
// to the full decoder) and returns its bytes.
func (s *scanner) rawString() ([]byte, bool) {
	raw, esc, nonASCII, ok := s.Str()
	return raw, ok && !esc && !nonASCII
}

// skip passes over one value of any kind.
func (s *scanner) skip() bool {
	s.Space()
	return s.Value()
}
