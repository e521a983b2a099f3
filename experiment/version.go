package experiment

import (
	"fmt"
	"strconv"
	"strings"
)

// version is a parsed version: numeric components and an optional
// pre-release tag ("3.4.0-beta.2" → [3 4 0], "beta.2").
type version struct {
	nums []int
	pre  string
}

// parseVersion reads a semver-like version, tolerating a leading "v",
// fewer or more than three components, and trailing build text
// ("3.4.2 (77)", "3.4.2+77").
func parseVersion(s string) (version, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "v"), "V")
	if i := strings.IndexAny(s, " +("); i >= 0 {
		s = s[:i]
	}
	core, pre, _ := strings.Cut(s, "-")
	if core == "" {
		return version{}, false
	}
	var v version
	for _, part := range strings.Split(core, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return version{}, false
		}
		v.nums = append(v.nums, n)
	}
	v.pre = pre
	return v, true
}

// compare orders versions as semver does: components numerically (missing
// ones are 0), then a pre-release before the release.
func (a version) compare(b version) int {
	for i := 0; i < max(len(a.nums), len(b.nums)); i++ {
		x, y := 0, 0
		if i < len(a.nums) {
			x = a.nums[i]
		}
		if i < len(b.nums) {
			y = b.nums[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	switch {
	case a.pre == b.pre:
		return 0
	case a.pre == "":
		return 1
	case b.pre == "":
		return -1
	}
	return comparePre(a.pre, b.pre)
}

// comparePre orders pre-release tags by their dot-separated identifiers,
// numeric ones numerically (beta.2 < beta.10).
func comparePre(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < min(len(as), len(bs)); i++ {
		x, xerr := strconv.Atoi(as[i])
		y, yerr := strconv.Atoi(bs[i])
		switch {
		case xerr == nil && yerr == nil:
			if x != y {
				if x < y {
					return -1
				}
				return 1
			}
		case xerr == nil:
			return -1
		case yerr == nil:
			return 1
		default:
			if c := strings.Compare(as[i], bs[i]); c != 0 {
				return c
			}
		}
	}
	switch {
	case len(as) < len(bs):
		return -1
	case len(as) > len(bs):
		return 1
	}
	return 0
}

// constraint is one comparison: op is one of = != < <= > >= ^ ~ or ""
// (a bare version: every version starting with these components).
type constraint struct {
	op string
	v  version
}

func (c constraint) match(v version) bool {
	cmp := v.compare(c.v)
	switch c.op {
	case "=", "==":
		return cmp == 0
	case "!=":
		return cmp != 0
	case "<":
		return cmp < 0
	case "<=":
		return cmp <= 0
	case ">":
		return cmp > 0
	case ">=":
		return cmp >= 0
	case "^": // same major version, not older
		return cmp >= 0 && len(v.nums) > 0 && len(c.v.nums) > 0 && v.nums[0] == c.v.nums[0]
	case "~": // same major.minor, not older
		return cmp >= 0 && prefixEqual(v, c.v, 2)
	}
	return prefixEqual(v, c.v, len(c.v.nums))
}

// prefixEqual reports whether v's first n components are ref's (missing
// components of v count as 0).
func prefixEqual(v, ref version, n int) bool {
	for i := 0; i < n && i < len(ref.nums); i++ {
		x := 0
		if i < len(v.nums) {
			x = v.nums[i]
		}
		if x != ref.nums[i] {
			return false
		}
	}
	return true
}

// versionRange is a parsed segment range: alternatives, each an optional
// platform name and constraints that must all hold.
type versionRange []rangeAlt

type rangeAlt struct {
	platform string // lower case; "" for any
	cons     []constraint
}

// parseRange reads "iOS >=17 <18 || Android >=14", ">=3.4.0", "3.4".
func parseRange(s string) (versionRange, error) {
	var r versionRange
	for _, alt := range strings.Split(s, "||") {
		var a rangeAlt
		fields := strings.Fields(strings.ReplaceAll(alt, ",", " "))
		if len(fields) == 0 {
			return nil, fmt.Errorf("version range %q has an empty alternative", s)
		}
		for i := 0; i < len(fields); i++ {
			f := fields[i]
			op := leadingOp(f)
			rest := f[len(op):]
			if rest == "" && op != "" && i+1 < len(fields) { // ">= 3.4" with a space
				i++
				rest = fields[i]
			}
			v, ok := parseVersion(rest)
			if !ok {
				if op == "" && len(a.cons) == 0 {
					a.platform = strings.TrimSpace(a.platform + " " + strings.ToLower(f))
					continue
				}
				return nil, fmt.Errorf("version range %q: %q is not a version", s, f)
			}
			a.cons = append(a.cons, constraint{op: op, v: v})
		}
		r = append(r, a)
	}
	return r, nil
}

func leadingOp(f string) string {
	for _, op := range []string{">=", "<=", "==", "!=", ">", "<", "=", "^", "~"} {
		if strings.HasPrefix(f, op) {
			return op
		}
	}
	return ""
}

// splitPlatform splits a client's "iOS 17.5" into "ios" and "17.5"; an app
// version has no platform.
func splitPlatform(s string) (platform, ver string) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return r >= '0' && r <= '9' })
	if i <= 0 {
		return "", s
	}
	p := strings.TrimSpace(s[:i])
	if p == "v" || p == "V" {
		return "", s
	}
	return strings.ToLower(p), s[i:]
}

// match reports whether a client's version string is in the range. A
// missing or unreadable version matches no range: a unit we cannot place
// stays out of the experiment.
func (r versionRange) match(client string) bool {
	platform, raw := splitPlatform(client)
	v, ok := parseVersion(raw)
	if !ok {
		return false
	}
	for _, a := range r {
		if a.platform != "" && a.platform != platform {
			continue
		}
		all := true
		for _, c := range a.cons {
			if !c.match(v) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}
