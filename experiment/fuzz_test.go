package experiment

import "testing"

// FuzzVersionRange: any segment range either parses or is refused, never
// panics; a parsed one matches any client string without panicking; and
// version order is antisymmetric.
func FuzzVersionRange(f *testing.F) {
	for _, s := range []string{">=3.4.0 <4", "iOS >=17 <18 || Android >=14", "^3.4", "~3.4.1", "3.4", "!=1.0.0-beta.2", "v2", ">= 1.2", "||", ""} {
		f.Add(s, "iOS 17.5", "3.4.0-rc.1")
	}
	f.Fuzz(func(t *testing.T, rng, client, other string) {
		if r, err := parseRange(rng); err == nil {
			_ = r.match(client)
		}
		a, okA := parseVersion(client)
		b, okB := parseVersion(other)
		if okA && okB && a.compare(b) != -b.compare(a) {
			t.Fatalf("compare(%q, %q) = %d but compare(%q, %q) = %d", client, other, a.compare(b), other, client, b.compare(a))
		}
	})
}
