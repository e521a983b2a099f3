// Package metricq reads the parts of a metrics query that the query surfaces
// share (GraphQL, REST, the CLI): time windows written as "last 1h" or
// from/to, durations such as "5m" or "7d", and dimension names in either
// spelling (network_type or networkType). Every refusal is a
// jobcast.Error E_BAD_REQUEST whose message names what was wrong and what is
// accepted, so each surface can show it as it is.
package metricq

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/metrics"
	"github.com/jobcast/jobcast/protocol"
)

// DefaultLast is the window of a query that names none: the last hour.
const DefaultLast = time.Hour

func bad(format string, args ...any) error {
	return jobcast.Errorf(protocol.ErrBadRequest, format, args...)
}

// ParseDuration reads a positive span: a Go duration ("90s", "5m", "1h30m")
// or a whole number of days ("7d", "30d"). what names the parameter in the
// error message.
func ParseDuration(what, s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, bad("%s is empty: give a duration such as 5m, 1h, 24h, 7d or 30d", what)
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n > math.MaxInt64/int64(24*time.Hour) {
			return 0, bad("%s %q is not a duration: use a whole number of days (7d) or units ms, s, m, h (5m, 1h30m)", what, s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, bad("%s %q is not a duration: use units ms, s, m, h (5m, 1h30m) or whole days (7d)", what, s)
		}
	}
	if d <= 0 {
		return 0, bad("%s %q must be positive", what, s)
	}
	return d, nil
}

// ParseTime reads an RFC 3339 instant (2026-01-05T10:00:00Z, fractions of
// a second and offsets allowed). what names the parameter in the error
// message.
func ParseTime(what, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, bad("%s %q is not an RFC 3339 time such as 2026-01-05T10:00:00Z", what, s)
	}
	return t.UTC(), nil
}

// Window returns the time window [from, to) of a query: the span last up to
// now, or the explicit from and to (to defaults to now). Giving last
// together with from or to is refused; giving nothing means the last hour.
// The times must already be parsed (zero means absent); now is truncated to
// the millisecond.
func Window(last string, from, to, now time.Time) (time.Time, time.Time, error) {
	// The store keeps milliseconds at least; a window ending at a whole
	// millisecond reads better and names the same events.
	now = now.UTC().Truncate(time.Millisecond)
	if last != "" {
		if !from.IsZero() || !to.IsZero() {
			return time.Time{}, time.Time{}, bad("give either last or from/to, not both")
		}
		d, err := ParseDuration("last", last)
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		return now.Add(-d).UTC(), now.UTC(), nil
	}
	switch {
	case from.IsZero() && to.IsZero():
		return now.Add(-DefaultLast).UTC(), now.UTC(), nil
	case from.IsZero():
		return time.Time{}, time.Time{}, bad("to needs a from (or give last, such as 1h, instead)")
	case to.IsZero():
		to = now
	}
	if !from.Before(to) {
		return time.Time{}, time.Time{}, bad("the window is empty: from %s is not before to %s",
			from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano))
	}
	return from.UTC(), to.UTC(), nil
}

// Param returns the camelCase spelling of dimension dim (network_type →
// networkType): the one JSON, the client context's query parameters and
// GraphQL use.
func Param(dim string) string {
	parts := strings.Split(dim, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

// Dimension returns the dimension named name, in the spelling of
// metrics.Dimensions; both network_type and networkType are accepted.
func Dimension(name string) (string, error) {
	for _, d := range metrics.Dimensions() {
		if name == d || name == Param(d) {
			return d, nil
		}
	}
	return "", bad("unknown dimension %q: dimensions are %s", name, strings.Join(metrics.Dimensions(), ", "))
}
