package metrics

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/big"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

// MaxBuckets bounds the points of one series: a bucketed Query whose window
// holds more buckets than this is refused, so a 1 ms bucket over 30 days
// cannot build a billion points.
const MaxBuckets = 10_000

// Query asks for one metric over a time window.
type Query struct {
	// Metric is a name from Definitions.
	Metric string
	// From and To are the window [From, To): an event at To is outside.
	From, To time.Time
	// Filters keeps only events whose dimension equals the value; keys are
	// from Dimensions. The empty string matches events without a value.
	Filters map[string]string
	// GroupBy splits the answer by these dimensions (from Dimensions).
	GroupBy []string
	// Bucket > 0 asks for a time series: buckets of this width (a whole
	// number of milliseconds), aligned to the Unix epoch, the first and last
	// clipped to the window. 0 asks for one point per group.
	Bucket time.Duration
}

// Point is one value of a metric: for one group, in one bucket.
type Point struct {
	// Time is the bucket's start (UTC, aligned to the epoch, so the first
	// bucket may start before From), or From for an unbucketed query.
	Time time.Time
	// Group holds the GroupBy dimensions' values; nil without GroupBy.
	Group map[string]string
	Value float64
	// Weight is what Value rests on: the denominator of a ratio, the
	// weighted sample count of an average or quantile, the count itself for
	// a count, the seconds for a per-second rate. Combine points of a ratio
	// with Σ(Value·Weight)/ΣWeight.
	Weight float64
}

// Result is a metric's answer. Points are ordered by Time, then by the
// GroupBy values in GroupBy order.
//
// A ratio, average or quantile with nothing to divide by (no connections, no
// heartbeats, …) has no point, never NaN or 0: an empty bucket is a gap in a
// chart, not a drop to zero. Counts and per-second rates are additive: every
// bucket of the window has a point for every group seen in the window, 0 when
// nothing happened, and an unbucketed, ungrouped count always has its point.
type Result struct {
	Metric string
	Unit   string
	Points []Point
}

// ErrorCount is one row of the top errors: an error code and how often it
// happened.
type ErrorCount struct {
	// Code is the event's error_code; a connect_failed event without one is
	// listed under its reason (token_expired, …).
	Code      string
	Provider  string
	Retryable bool
	// Count is the number of error and connect_failed events, weighted by
	// sample_interval.
	Count int64
	// Sessions is the number of distinct jobs the errors happened to.
	Sessions int64
}

// Library computes metrics from a telemetry store. It is safe for concurrent
// use; it holds no state besides the store.
type Library struct {
	store jobcast.TelemetryStore
}

// New returns a Library reading store. The store's Dialect decides the SQL;
// an unknown dialect makes every call fail.
func New(store jobcast.TelemetryStore) *Library {
	return &Library{store: store}
}

func badRequest(format string, args ...any) error {
	return jobcast.Errorf(protocol.ErrBadRequest, format, args...)
}

func (l *Library) dialect() (dialect, error) {
	d, ok := dialects[l.store.Dialect()]
	if !ok {
		return nil, fmt.Errorf("metrics: no SQL dialect for telemetry store %q", l.store.Dialect())
	}
	return d, nil
}

// validate checks the parts of q every call uses: window, filters, group-by
// and bucket.
func validate(q *Query) error {
	if q.From.IsZero() || q.To.IsZero() {
		return badRequest("a time window needs both from and to")
	}
	if !q.From.Before(q.To) {
		return badRequest("the time window is empty: from %s is not before to %s",
			q.From.UTC().Format(time.RFC3339), q.To.UTC().Format(time.RFC3339))
	}
	for k := range q.Filters {
		if !slices.Contains(dimensions, k) {
			return badRequest("cannot filter by %q: dimensions are %s", k, strings.Join(dimensions, ", "))
		}
	}
	for i, g := range q.GroupBy {
		if !slices.Contains(dimensions, g) {
			return badRequest("cannot group by %q: dimensions are %s", g, strings.Join(dimensions, ", "))
		}
		if slices.Contains(q.GroupBy[:i], g) {
			return badRequest("group by %q twice", g)
		}
	}
	if q.Bucket < 0 {
		return badRequest("bucket must not be negative")
	}
	if q.Bucket > 0 {
		if q.Bucket%time.Millisecond != 0 {
			return badRequest("bucket %s is not a whole number of milliseconds", q.Bucket)
		}
		first := bucketFloor(q.From, q.Bucket)
		if n := (q.To.UnixMilli() - first + q.Bucket.Milliseconds() - 1) / q.Bucket.Milliseconds(); n > MaxBuckets {
			return badRequest("%d buckets of %s in the window; at most %d", n, q.Bucket, MaxBuckets)
		}
	}
	return nil
}

// bucketFloor returns the start, in ms since the epoch, of t's bucket.
func bucketFloor(t time.Time, bucket time.Duration) int64 {
	ms, b := t.UnixMilli(), bucket.Milliseconds()
	r := ms % b
	if r < 0 {
		r += b
	}
	return ms - r
}

// builder writes one statement and collects its arguments in the order their
// placeholders appear.
type builder struct {
	d    dialect
	args []any
}

func (b *builder) arg(v any) string {
	b.args = append(b.args, v)
	return "?"
}

func (b *builder) time(t time.Time) string {
	sql, v := b.d.timeArg(t)
	b.args = append(b.args, v)
	return sql
}

// keys returns the grouping select expressions and their names: the GroupBy
// columns, then the bucket start. It must be called before where, so that
// placeholders and arguments line up.
func (b *builder) keys(q *Query) (exprs, names []string) {
	for _, g := range q.GroupBy {
		exprs = append(exprs, g)
		names = append(names, g)
	}
	if q.Bucket > 0 {
		exprs = append(exprs, b.d.bucketStart(b.arg(q.Bucket.Milliseconds()))+" AS bucket_ms")
		names = append(names, "bucket_ms")
	}
	return exprs, names
}

// where returns the condition for the window, the events, and the filters.
func (b *builder) where(q *Query, events []string, sessionsOnly bool) string {
	conds := []string{"ts >= " + b.time(q.From), "ts < " + b.time(q.To)}
	if len(events) > 0 {
		// Event names are package constants, never user input: written as
		// literals, they let the engine filter inside the scan.
		conds = append(conds, b.d.inList("event", events))
	}
	if sessionsOnly {
		conds = append(conds, "job_id <> ''")
	}
	fk := make([]string, 0, len(q.Filters))
	for k := range q.Filters {
		fk = append(fk, k)
	}
	sort.Strings(fk)
	for _, k := range fk {
		conds = append(conds, k+" = "+b.arg(q.Filters[k]))
	}
	return strings.Join(conds, " AND ")
}

// statement returns the SQL for metric m and query q. Its answer has one row
// per group: the GroupBy values, the bucket start (ms), then num and den
// (kindQuantile: value and weight).
func statement(d dialect, m *metric, q *Query) (string, []any) {
	b := &builder{d: d}
	exprs, names := b.keys(q)
	where := b.where(q, m.events, m.sessionsOnly)
	if m.kind == kindQuantile {
		return d.weightedQuantile(exprs, names, m.value, where, m.quantile), b.args
	}
	// The outer SELECT: over events, or over per-job rows.
	var sb strings.Builder
	sb.WriteString("SELECT ")
	from := " FROM events WHERE " + where
	if m.perJob != nil {
		for _, n := range names {
			sb.WriteString(n + ", ")
		}
		inner := "SELECT " + strings.Join(slices.Concat(exprs, []string{"job_id", m.perJob(d)}), ", ") + from +
			" GROUP BY " + strings.Join(slices.Concat(names, []string{"job_id"}), ", ")
		from = " FROM (" + inner + ") AS jobs"
	} else {
		for _, e := range exprs {
			sb.WriteString(e + ", ")
		}
	}
	sb.WriteString("CAST(coalesce(" + m.num(d, rawSrc) + ", 0) AS DOUBLE) AS num")
	if m.den != nil {
		sb.WriteString(", CAST(coalesce(" + m.den(d, rawSrc) + ", 0) AS DOUBLE) AS den")
	}
	sb.WriteString(from)
	if len(names) > 0 {
		sb.WriteString(" GROUP BY " + strings.Join(names, ", "))
	}
	return sb.String(), b.args
}

// Compute answers q.
func (l *Library) Compute(ctx context.Context, q Query) (*Result, error) {
	m, ok := lookup(q.Metric)
	if !ok {
		return nil, badRequest("unknown metric %q", q.Metric)
	}
	if err := validate(&q); err != nil {
		return nil, err
	}
	d, err := l.dialect()
	if err != nil {
		return nil, err
	}
	points, err := l.compute(ctx, d, m, &q)
	if err != nil {
		return nil, fmt.Errorf("metrics: %s: %w", m.Name, err)
	}
	if q.Bucket > 0 && (m.kind == kindSum || m.kind == kindPerSecond) {
		points = fillBuckets(m, &q, points)
	}
	sortPoints(points, q.GroupBy)
	return &Result{Metric: m.Name, Unit: m.Unit, Points: points}, nil
}

// compute returns q's points, unordered and without the zero points of
// additive metrics: from rollups for the whole days that have them when the
// store keeps rollups and q's shape allows (rollable), otherwise, and for the
// other days, from events.
func (l *Library) compute(ctx context.Context, d dialect, m *metric, q *Query) ([]Point, error) {
	if rd, ok := d.(rollupDialect); ok && (rollable(m, q) || mixable(m, q)) {
		// Daily buckets: each bucket from rollups or from events. Other
		// windows: one statement mixing rollups for the whole days inside
		// and events for the rest.
		try := l.computeMixed
		if q.Bucket == day && rollable(m, q) {
			try = l.computeRolled
		}
		// Each try that finds the rollups changed meanwhile (a late event
		// dropped a day, a day was built) tries again; after three, events.
		for range 3 {
			points, ok, err := try(ctx, rd, m, q)
			if err != nil {
				return nil, err
			}
			if ok {
				return points, nil
			}
		}
	}
	return l.raw(ctx, d, m, q, q)
}

// readPoints turns the statement's rows into points.
func readPoints(m *metric, q *Query, rows *jobcast.Rows) ([]Point, error) {
	ng := len(q.GroupBy)
	ncol := ng + 1
	if q.Bucket > 0 {
		ncol++
	}
	if m.den != nil || m.kind == kindQuantile {
		ncol++
	}
	points := make([]Point, 0, len(rows.Rows))
	for _, r := range rows.Rows {
		if len(r) != ncol {
			return nil, fmt.Errorf("answer has %d columns, want %d", len(r), ncol)
		}
		p := Point{Time: q.From}
		if ng > 0 {
			p.Group = make(map[string]string, ng)
			for i, g := range q.GroupBy {
				s, err := toString(r[i])
				if err != nil {
					return nil, fmt.Errorf("column %s: %w", g, err)
				}
				p.Group[g] = s
			}
		}
		c := ng
		if q.Bucket > 0 {
			ms, err := toFloat(r[c])
			if err != nil || r[c] == nil {
				return nil, fmt.Errorf("bucket column: %v (%T)", r[c], r[c])
			}
			p.Time = time.UnixMilli(int64(ms)).UTC()
			c++
		}
		num, err := toFloat(r[c])
		if err != nil {
			return nil, err
		}
		switch m.kind {
		case kindSum:
			p.Value, p.Weight = num, num
		case kindPerSecond:
			secs := seconds(q, p.Time)
			p.Value, p.Weight = num/secs, secs
		case kindRatio, kindQuantile:
			den, err := toFloat(r[c+1])
			if err != nil {
				return nil, err
			}
			if den == 0 || r[c] == nil {
				continue // nothing to divide by, no samples: no point
			}
			p.Value, p.Weight = num, den
			if m.kind == kindRatio {
				p.Value = num / den
			}
		}
		if math.IsNaN(p.Value) || math.IsInf(p.Value, 0) {
			continue
		}
		points = append(points, p)
	}
	return points, nil
}

// seconds is the length of the window, or of the part of the bucket starting
// at start that lies inside the window.
func seconds(q *Query, start time.Time) float64 {
	if q.Bucket == 0 {
		return q.To.Sub(q.From).Seconds()
	}
	from, to := start, start.Add(q.Bucket)
	if from.Before(q.From) {
		from = q.From
	}
	if to.After(q.To) {
		to = q.To
	}
	return to.Sub(from).Seconds()
}

// fillBuckets adds a zero point for every bucket of the window that a group
// seen in the answer (or, without GroupBy, the one group) has no point in.
func fillBuckets(m *metric, q *Query, points []Point) []Point {
	type key struct {
		group string
		ms    int64
	}
	have := make(map[key]bool, len(points))
	groups := map[string]map[string]string{}
	var order []string
	for _, p := range points {
		g := groupKey(p.Group, q.GroupBy)
		have[key{g, p.Time.UnixMilli()}] = true
		if _, ok := groups[g]; !ok {
			groups[g] = p.Group
			order = append(order, g)
		}
	}
	if len(q.GroupBy) == 0 && len(order) == 0 {
		groups[""] = nil
		order = append(order, "")
	}
	step := q.Bucket.Milliseconds()
	for ms := bucketFloor(q.From, q.Bucket); ; ms += step {
		t := time.UnixMilli(ms).UTC()
		if !t.Before(q.To) {
			break
		}
		for _, g := range order {
			if have[key{g, ms}] {
				continue
			}
			p := Point{Time: t, Group: cloneGroup(groups[g])}
			if m.kind == kindPerSecond {
				p.Weight = seconds(q, t)
			}
			points = append(points, p)
		}
	}
	return points
}

func cloneGroup(g map[string]string) map[string]string {
	if g == nil {
		return nil
	}
	c := make(map[string]string, len(g))
	for k, v := range g {
		c[k] = v
	}
	return c
}

// groupKey encodes a group's values in GroupBy order.
func groupKey(g map[string]string, by []string) string {
	var sb strings.Builder
	for _, d := range by {
		sb.WriteString(g[d])
		sb.WriteByte(0)
	}
	return sb.String()
}

func sortPoints(points []Point, by []string) {
	slices.SortStableFunc(points, func(a, b Point) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		for _, d := range by {
			if c := cmp.Compare(a.Group[d], b.Group[d]); c != 0 {
				return c
			}
		}
		return 0
	})
}

// TopErrors lists the most frequent errors in q's window that match q's
// Filters: error and connect_failed events grouped by code, provider and
// retryable, most frequent first (ties: more sessions first, then by code).
// q.Metric is ignored; GroupBy and Bucket must be empty. limit ≤ 0 means 10;
// at most 1000.
func (l *Library) TopErrors(ctx context.Context, q Query, limit int) ([]ErrorCount, error) {
	if err := validate(&q); err != nil {
		return nil, err
	}
	if len(q.GroupBy) > 0 || q.Bucket > 0 {
		return nil, badRequest("top errors take no group-by or bucket")
	}
	switch {
	case limit <= 0:
		limit = 10
	case limit > 1000:
		limit = 1000
	}
	d, err := l.dialect()
	if err != nil {
		return nil, err
	}
	b := &builder{d: d}
	where := b.where(&q, []string{jobcast.EventError, jobcast.EventConnectFailed}, false)
	sql := "SELECT CASE WHEN error_code = '' THEN reason ELSE error_code END AS code, provider, retryable, " +
		"CAST(sum(" + w + ") AS BIGINT) AS n, " +
		"CAST(" + d.countDistinctIf("job_id", "job_id <> ''") + " AS BIGINT) AS sessions " +
		"FROM events WHERE " + where +
		" GROUP BY code, provider, retryable ORDER BY n DESC, sessions DESC, code, provider, retryable LIMIT " + b.arg(int64(limit))
	rows, err := l.store.Query(ctx, sql, b.args...)
	if err != nil {
		return nil, fmt.Errorf("metrics: top errors: %w", err)
	}
	out := make([]ErrorCount, 0, len(rows.Rows))
	for _, r := range rows.Rows {
		if len(r) != 5 {
			return nil, fmt.Errorf("metrics: top errors: answer has %d columns, want 5", len(r))
		}
		var e ErrorCount
		var err error
		if e.Code, err = toString(r[0]); err != nil {
			return nil, fmt.Errorf("metrics: top errors: %w", err)
		}
		if e.Provider, err = toString(r[1]); err != nil {
			return nil, fmt.Errorf("metrics: top errors: %w", err)
		}
		e.Retryable, _ = r[2].(bool)
		n, err1 := toFloat(r[3])
		s, err2 := toFloat(r[4])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("metrics: top errors: counts %T %T", r[3], r[4])
		}
		e.Count, e.Sessions = int64(n), int64(s)
		out = append(out, e)
	}
	return out, nil
}

// toFloat reads a numeric driver value; NULL is 0.
func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case int:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case *big.Int:
		f, _ := new(big.Float).SetInt(x).Float64()
		return f, nil
	}
	return 0, fmt.Errorf("not a number: %T", v)
}

// toString reads a string driver value; NULL is "".
func toString(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	}
	return "", fmt.Errorf("not a string: %T", v)
}
