package alerting

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jobcast/jobcast"
)

// matcher is a compiled jobcast.Matcher.
type matcher struct {
	jobcast.Matcher
	re *regexp.Regexp
}

// ParseMatcher reads a matcher as Alertmanager writes one:
// name=value, name!=value, name=~regex, name!~regex. Values may be quoted.
func ParseMatcher(s string) (jobcast.Matcher, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexAny(s, "=!")
	if i > 0 {
		rest := s[i:]
		op := ""
		for _, o := range []string{"!=", "!~", "=~", "="} {
			if strings.HasPrefix(rest, o) {
				op = o
				break
			}
		}
		if op != "" {
			name := strings.TrimSpace(s[:i])
			value := strings.TrimSpace(rest[len(op):])
			if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
				uq, err := strconv.Unquote(value)
				if err != nil {
					return jobcast.Matcher{}, fmt.Errorf("matcher %q: the quoted value is not a valid string: %v", s, err)
				}
				value = uq
			}
			if !labelRE.MatchString(name) {
				return jobcast.Matcher{}, fmt.Errorf("matcher %q: label name %q must be letters, digits and _", s, name)
			}
			m := jobcast.Matcher{Name: name, Value: value, IsEqual: op[0] == '=', IsRegex: strings.HasSuffix(op, "~")}
			if _, err := compileMatcher(m); err != nil {
				return jobcast.Matcher{}, fmt.Errorf("matcher %q: %v", s, err)
			}
			return m, nil
		}
	}
	return jobcast.Matcher{}, fmt.Errorf("matcher %q must be name=value, name!=value, name=~regex or name!~regex", s)
}

// FormatMatcher writes m as ParseMatcher reads it.
func FormatMatcher(m jobcast.Matcher) string {
	op := "="
	switch {
	case m.IsEqual && m.IsRegex:
		op = "=~"
	case !m.IsEqual && m.IsRegex:
		op = "!~"
	case !m.IsEqual:
		op = "!="
	}
	return m.Name + op + fmt.Sprintf("%q", m.Value)
}

func compileMatcher(m jobcast.Matcher) (matcher, error) {
	cm := matcher{Matcher: m}
	if m.IsRegex {
		// Anchored, as in Alertmanager: the regex must match the whole value.
		re, err := regexp.Compile("^(?:" + m.Value + ")$")
		if err != nil {
			return cm, fmt.Errorf("bad regex: %v", err)
		}
		cm.re = re
	}
	return cm, nil
}

// matches reports whether labels satisfy m; a missing label is "".
func (m *matcher) matches(labels map[string]string) bool {
	v := labels[m.Name]
	var ok bool
	if m.re != nil {
		ok = m.re.MatchString(v)
	} else {
		ok = v == m.Value
	}
	return ok == m.IsEqual
}

func matchAll(ms []matcher, labels map[string]string) bool {
	for i := range ms {
		if !ms[i].matches(labels) {
			return false
		}
	}
	return true
}

// activeSilence is a silence in force, compiled.
type activeSilence struct {
	jobcast.Silence
	matchers []matcher
}

func compileSilence(s jobcast.Silence) (*activeSilence, error) {
	as := &activeSilence{Silence: s}
	for _, m := range s.Matchers {
		cm, err := compileMatcher(m)
		if err != nil {
			return nil, err
		}
		as.matchers = append(as.matchers, cm)
	}
	return as, nil
}

// validateSilence checks a new silence.
func validateSilence(s *jobcast.Silence, now time.Time) error {
	if len(s.Matchers) == 0 {
		return fmt.Errorf("a silence needs at least one matcher")
	}
	for _, m := range s.Matchers {
		if !labelRE.MatchString(m.Name) {
			return fmt.Errorf("matcher label name %q must be letters, digits and _", m.Name)
		}
		if _, err := compileMatcher(m); err != nil {
			return fmt.Errorf("matcher %s: %v", FormatMatcher(m), err)
		}
	}
	if !s.EndsAt.After(s.StartsAt) {
		return fmt.Errorf("endsAt must be after startsAt")
	}
	if !s.EndsAt.After(now) {
		return fmt.Errorf("endsAt is in the past")
	}
	return nil
}
