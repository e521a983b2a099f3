package nats

import (
	"fmt"
	"strings"
)

// DefaultPrefix is the subject prefix of the broker and the job store.
const DefaultPrefix = "jobcast"

// token encodes a job id as one subject token. Job ids may contain '.',
// which separates tokens; it and the other bytes a token cannot hold ('*',
// '>', whitespace, control bytes) are percent-encoded, as is '%' itself, so
// the encoding is reversible and typical ids stay readable in nats tooling.
func token(id string) string {
	clean := true
	for i := 0; i < len(id); i++ {
		if needsEscape(id[i]) {
			clean = false
			break
		}
	}
	if clean && id != "" {
		return id
	}
	if id == "" {
		return "%" // never produced for a non-empty id: '%' is escaped
	}
	var b strings.Builder
	b.Grow(len(id) + 8)
	for i := 0; i < len(id); i++ {
		c := id[i]
		if needsEscape(c) {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func needsEscape(c byte) bool {
	return c <= ' ' || c == 0x7f || c == '.' || c == '*' || c == '>' || c == '%'
}
