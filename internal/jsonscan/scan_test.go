package jsonscan

import (
	"encoding/json"
	"testing"
)

// Value accepts exactly the values encoding/json accepts, within the
// depth limit.
func TestValueAgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		`0`, `-0`, `01`, `-`, `1.`, `1.5e+3`, `1e`, `.5`, `true`, `tru`, `nul`, `null`,
		`""`, `"a\"b"`, `"\u00e9"`, `"\u00g9"`, `"\x"`, "\"\x01\"", `"é"`, `"unterminated`,
		`{}`, `[]`, `{"a":1,"b":[1,2,{"c":null}]}`, `{"a":1,}`, `[1,]`, `{"a" 1}`, `{1:2}`,
		`[[[[1]]]]`, ` [ 1 , 2 ] `, `{"a":1}}`,
	} {
		s := Scanner{B: []byte(in)}
		s.Space()
		got := s.Value()
		s.Space()
		got = got && s.I == len(s.B)
		if want := json.Valid([]byte(in)); got != want {
			t.Errorf("%q: Value %v, encoding/json %v", in, got, want)
		}
	}
	deep := Scanner{B: []byte(`[[[1]]]`), MaxDepth: 2}
	if deep.Value() {
		t.Error("depth 3 accepted with MaxDepth 2")
	}
	if ok := (&Scanner{B: []byte(`[[1]]`), MaxDepth: 2}).Value(); !ok {
		t.Error("depth 2 refused with MaxDepth 2")
	}
}

func TestStrIntFold(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in                string
		raw               string
		esc, nonASCII, ok bool
	}{
		{`"plain"`, "plain", false, false, true},
		{`"a\nb"`, `a\nb`, true, false, true},
		{`"café"`, "café", false, true, true},
		{`"bad\q"`, "", false, false, false},
		{`plain`, "", false, false, false},
	} {
		s := Scanner{B: []byte(tt.in)}
		raw, esc, hi, ok := s.Str()
		if string(raw) != tt.raw || esc != tt.esc || hi != tt.nonASCII || ok != tt.ok {
			t.Errorf("Str(%s) = %q %v %v %v", tt.in, raw, esc, hi, ok)
		}
	}
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"-42", -42, true}, {"922337203685477579", 922337203685477579, true}, {"9223372036854775807", 0, false},
		{"99999999999999999999", 0, false}, {"01", 0, false}, {"1.5", 0, false}, {"1e3", 0, false}, {"-", 0, false},
	} {
		s := Scanner{B: []byte(tt.in)}
		if v, ok := s.Int(); v != tt.want || ok != tt.ok {
			t.Errorf("Int(%s) = %d %v, want %d %v", tt.in, v, ok, tt.want, tt.ok)
		}
	}
	if !EqualFoldASCII([]byte("ProcessedCount"), "processedCount") || EqualFoldASCII([]byte("processed"), "processedCount") {
		t.Error("EqualFoldASCII")
	}
}
