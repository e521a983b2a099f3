package alerting_test

import (
	"testing"

	"github.com/jobcast/jobcast/alerting"
)

// FuzzCheck feeds arbitrary documents to the alerts file parser and
// validator: they must answer with rules or an error, never panic.
func FuzzCheck(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("rules:\n  - {name: x, metric: error_rate, window: 10m, op: '>', threshold: 0.05, severity: critical, for: 1m}\n"))
	f.Add([]byte("rules:\n  - {name: y, sql: 'SELECT 1 AS value', window: 7d, op: '<', threshold: 1, severity: info, annotations: {summary: '{{ pct .Value }}'}}\n"))
	f.Add([]byte("receivers:\n  - {name: m, type: email, url: 'smtp://u:p@h:25', to: [a@b], from: c@d}\nroutes:\n  - {receiver: m, matchers: ['a=~b.*']}\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		n, err := alerting.Check(doc)
		if err == nil && n < 0 {
			t.Fatalf("Check = %d rules", n)
		}
	})
}

// FuzzParseMatcher: a matcher that parses formats back to itself.
func FuzzParseMatcher(f *testing.F) {
	for _, s := range []string{"a=b", `a!="b c"`, "a=~b.*", "a!~(x|y)", "=", "a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := alerting.ParseMatcher(s)
		if err != nil {
			return
		}
		back, err := alerting.ParseMatcher(alerting.FormatMatcher(m))
		if err != nil || back != m {
			t.Fatalf("%q parsed to %+v, formatted %q, read back %+v (%v)", s, m, alerting.FormatMatcher(m), back, err)
		}
	})
}
