// Package jsonscan is the byte scanner under jobcast's hand-written JSON
// fast paths: the Go SDK's frame reader and the producer API's batch
// parser. Each fast path reads the shapes it expects in one pass and hands
// anything else to encoding/json, so the scanner's job is to accept only
// valid JSON (as encoding/json's scanner does) while telling its caller
// enough (escapes, non-ASCII bytes) to decide when to hand over.
package jsonscan

import "unicode/utf8"

// Scanner walks JSON text in B from I. Every method returns false on
// anything it does not accept, including text that is not valid JSON, and
// may leave I anywhere then.
type Scanner struct {
	B []byte
	I int
	// Depth is the nesting of objects and arrays the scanner is in; Value
	// refuses to go deeper than MaxDepth when that is set.
	Depth, MaxDepth int
}

// Space skips JSON whitespace.
func (s *Scanner) Space() {
	i := s.I
	for i < len(s.B) {
		switch s.B[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			s.I = i
			return
		}
	}
	s.I = i
}

// Consume skips whitespace and then c, reporting whether c was there.
func (s *Scanner) Consume(c byte) bool {
	s.Space()
	if s.I < len(s.B) && s.B[s.I] == c {
		s.I++
		return true
	}
	return false
}

// Str reads a string, the scanner on its opening quote, and returns its
// raw contents (escapes not decoded) and whether they hold an escape or a
// byte outside ASCII.
func (s *Scanner) Str() (raw []byte, esc, nonASCII, ok bool) {
	b := s.B
	if s.I >= len(b) || b[s.I] != '"' {
		return nil, false, false, false
	}
	// A local index: this loop is the fast paths' hottest, and s.I would
	// be stored on every byte.
	start := s.I + 1
	for i := start; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\':
		case c == '"':
			s.I = i + 1
			return b[start:i], esc, nonASCII, true
		case c == '\\':
			esc = true
			if i++; i >= len(b) {
				return nil, false, false, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return nil, false, false, false
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return nil, false, false, false
					}
				}
				i += 4
			default:
				return nil, false, false, false
			}
		case c < 0x20:
			return nil, false, false, false
		default:
			nonASCII = true
		}
	}
	return nil, false, false, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// Value skips one value of any kind, the scanner on its first byte,
// checking it as encoding/json's scanner does.
func (s *Scanner) Value() bool {
	if s.I >= len(s.B) {
		return false
	}
	switch c := s.B[s.I]; {
	case c == '"':
		_, _, _, ok := s.Str()
		return ok
	case c == '{' || c == '[':
		if s.Depth++; s.MaxDepth > 0 && s.Depth > s.MaxDepth {
			return false
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		s.I++
		s.Space()
		if s.I < len(s.B) && s.B[s.I] == closer {
			s.I++
			s.Depth--
			return true
		}
		for {
			if c == '{' {
				if _, _, _, ok := s.Str(); !ok {
					return false
				}
				if !s.Consume(':') {
					return false
				}
				s.Space()
			}
			if !s.Value() {
				return false
			}
			s.Space()
			if s.I >= len(s.B) {
				return false
			}
			d := s.B[s.I]
			s.I++
			if d == closer {
				s.Depth--
				return true
			}
			if d != ',' {
				return false
			}
			s.Space()
		}
	case c == '-' || c >= '0' && c <= '9':
		return s.Number()
	case c == 't':
		return s.Literal("true")
	case c == 'f':
		return s.Literal("false")
	case c == 'n':
		return s.Literal("null")
	}
	return false
}

// Literal skips lit.
func (s *Scanner) Literal(lit string) bool {
	if len(s.B)-s.I < len(lit) || string(s.B[s.I:s.I+len(lit)]) != lit {
		return false
	}
	s.I += len(lit)
	return true
}

// Number skips a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *Scanner) Number() bool {
	if s.I < len(s.B) && s.B[s.I] == '-' {
		s.I++
	}
	if s.I >= len(s.B) {
		return false
	}
	switch c := s.B[s.I]; {
	case c == '0':
		s.I++
	case c >= '1' && c <= '9':
		s.Digits()
	default:
		return false
	}
	if s.I < len(s.B) && s.B[s.I] == '.' {
		s.I++
		if s.Digits() == 0 {
			return false
		}
	}
	if s.I < len(s.B) && (s.B[s.I] == 'e' || s.B[s.I] == 'E') {
		s.I++
		if s.I < len(s.B) && (s.B[s.I] == '+' || s.B[s.I] == '-') {
			s.I++
		}
		if s.Digits() == 0 {
			return false
		}
	}
	return true
}

// Digits skips decimal digits and returns how many.
func (s *Scanner) Digits() int {
	start := s.I
	for s.I < len(s.B) && s.B[s.I] >= '0' && s.B[s.I] <= '9' {
		s.I++
	}
	return s.I - start
}

// Int reads an integer (no fraction, no exponent). It refuses those within
// a digit of the int64 limits, which its callers leave to encoding/json.
func (s *Scanner) Int() (int64, bool) {
	neg := s.I < len(s.B) && s.B[s.I] == '-'
	if neg {
		s.I++
	}
	start := s.I
	var v int64
	for s.I < len(s.B) && s.B[s.I] >= '0' && s.B[s.I] <= '9' {
		if v > (1<<63-1-9)/10 {
			return 0, false
		}
		v = v*10 + int64(s.B[s.I]-'0')
		s.I++
	}
	n := s.I - start
	if n == 0 || (n > 1 && s.B[start] == '0') {
		return 0, false
	}
	if s.I < len(s.B) {
		switch s.B[s.I] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	if neg {
		v = -v
	}
	return v, true
}

// EqualFoldASCII is strings.EqualFold for an ASCII key and name.
func EqualFoldASCII(key []byte, name string) bool {
	if len(key) != len(name) {
		return false
	}
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
