package clickhouse

import "strings"

// tokKind classifies a token of ClickHouse SQL.
type tokKind int

const (
	tokWord   tokKind = iota // keyword or identifier, unquoted
	tokQuoted                // "identifier" or `identifier`
	tokString                // 'string'
	tokNumber
	tokPunct // one byte: ( ) , . ; ? and operators
)

type token struct {
	kind     tokKind
	text     string // for tokQuoted, the identifier without quotes
	pos, end int    // byte offsets in the query
}

// lower is a word's or quoted identifier's lower-case text.
func (t token) lower() string { return strings.ToLower(t.text) }

func (t token) is(p string) bool { return t.kind == tokPunct && t.text == p }

func (t token) word(w string) bool { return t.kind == tokWord && strings.EqualFold(t.text, w) }

// tokenize splits q into tokens, dropping comments and whitespace. It knows
// ClickHouse's quoting (” and \' in strings, "" and “ identifiers) so that
// a keyword or '?' inside a string or comment is never taken for one; an
// unterminated string or comment ends the token stream (the server reports
// the syntax error).
func tokenize(q string) []token {
	var out []token
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			for i < len(q) && q[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			j := strings.Index(q[i+2:], "*/")
			if j < 0 {
				return out
			}
			i += j + 4
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			var b strings.Builder
			closed := false
			for j < len(q) {
				if q[j] == '\\' && j+1 < len(q) {
					b.WriteByte(q[j+1])
					j += 2
					continue
				}
				if q[j] == c {
					if j+1 < len(q) && q[j+1] == c {
						b.WriteByte(c)
						j += 2
						continue
					}
					closed = true
					j++
					break
				}
				b.WriteByte(q[j])
				j++
			}
			if !closed {
				return out
			}
			kind := tokQuoted
			if c == '\'' {
				kind = tokString
			}
			out = append(out, token{kind: kind, text: b.String(), pos: i, end: j})
			i = j
		case isWordByte(c) && !(c >= '0' && c <= '9'):
			j := i
			for j < len(q) && isWordByte(q[j]) {
				j++
			}
			out = append(out, token{kind: tokWord, text: q[i:j], pos: i, end: j})
			i = j
		case c >= '0' && c <= '9':
			j := i
			for j < len(q) && (isWordByte(q[j]) || q[j] == '.') {
				j++
			}
			out = append(out, token{kind: tokNumber, text: q[i:j], pos: i, end: j})
			i = j
		default:
			out = append(out, token{kind: tokPunct, text: q[i : i+1], pos: i, end: i + 1})
			i++
		}
	}
	return out
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80
}
