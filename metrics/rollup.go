package metrics

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jobcast/jobcast"
)

// day is the width of a rollup row: rollups aggregate whole UTC days.
const day = 24 * time.Hour

// rollupDims are the dimensions the rollup tables keep; a query that
// filters or groups by another (device_model) reads events.
var rollupDims = []string{"pipeline", "app_version", "os_version", "network_type"}

// rollupDialect is a dialect whose store keeps the daily rollup tables
// described in package duckdb (rollup_days, rollup_state, rollup_events,
// rollup_jobs, rollup_rtt_bins, rollup_rtt, rollup_dim_jobs,
// rollup_dim_rtt_bins). The library reads them for the whole days that
// rollup_days lists and events for the rest, so an answer never depends on
// whether a day was rolled up.
//
// In ClickHouse the same rollups are materialized views on events, kept by
// the engine on every insert, so every day is always "rolled up" (a
// dialect there would plan with all whole days and no generation check):
//   - rollup_events: a SummingMergeTree ordered by (day, event, pipeline,
//     app_version, os_version, network_type), its view summing
//     sample_interval, the token-expired weight and x·sample_interval;
//     queries sum() again, as here, since merges are eventual.
//   - rollup_jobs and rollup_dim_jobs: an AggregatingMergeTree per (day,
//     dimensions) holding uniqExactState(job_id) and
//     uniqExactIfState(job_id, errored | connected), read with
//     uniqExactMerge: the merge of exact distinct sets, where DuckDB needs
//     the per-day job numbers, or the job keys of rollup_job_ids across
//     days, and a bitstring per group.
//   - rollup_rtt_bins and rollup_rtt: a SummingMergeTree of weights per
//     (day, dimensions, bin) and per (day, bin, dimensions, rtt_ms);
//     quantileExactWeighted over the latter is exact as is, or the same
//     two passes as here.
//
// Retention there is a TTL on day, which drops events and rollups of a day
// together.
type rollupDialect interface {
	dialect
	// dayBucket is bucketStart for col, the day column of a rollup table.
	dayBucket(col, width string) string
	// distinctJobs counts the distinct jobs of a group's rollup_jobs rows
	// where cond holds; jobs is at least the largest job number.
	distinctJobs(cond string, jobs int64) string
	// rolledQuantile is weightedQuantile over rollup_rtt_bins (to find
	// each group's bin) and rollup_rtt (the values in that bin). keys,
	// names and where are as for weightedQuantile, over rollup_rtt_bins;
	// hkeys and whereH are the same for rollup_rtt rows of alias h. Their
	// placeholders appear in the order keys, where, hkeys, whereH.
	// bins is the table of the first pass: rollup_rtt_bins or
	// rollup_dim_rtt_bins.
	rolledQuantile(bins string, keys, names []string, where string, hkeys []string, whereH string, bp int) string
	// unionJobs counts distinct jobs where cond holds over rows of columns
	// k (a rollup_jobs.job_key in [lo, hi], or NULL) and job_id (NULL
	// when k is set).
	unionJobs(cond string, lo, hi int64) string
	// rolledBin is rollup_rtt's bin computed from an events column, the
	// same expression the store's rollup build uses.
	rolledBin(col string) string
}

// rollable reports whether m over q may read rollups bucket by bucket
// (computeRolled): q is bucketed by whole days (by exactly one day for
// distinct-job counts, whose job numbers are per day) and filters and
// groups only by rollupDims. compute uses that for daily buckets, and
// computeMixed (mixable) for the rest.
func rollable(m *metric, q *Query) bool {
	if q.Bucket <= 0 || q.Bucket%day != 0 {
		return false
	}
	if m.perJob != nil || m.jobsDen != "" {
		if m.jobsDen == "" || q.Bucket != day {
			return false
		}
	}
	for k := range q.Filters {
		if !slices.Contains(rollupDims, k) {
			return false
		}
	}
	for _, g := range q.GroupBy {
		if !slices.Contains(rollupDims, g) {
			return false
		}
	}
	return true
}

// span is a part of the window: [from, to) in ms, answered from rollups or
// from events.
type span struct {
	from, to int64
	rolled   bool
}

// rollupPlan reads which days have rollups and splits q's window into
// spans: runs of whole buckets all of whose days have rollups, and the
// rest. It returns the rollup generation the plan rests on and the largest
// number of jobs of a rolled-up day in the window.
func (l *Library) rollupPlan(ctx context.Context, d rollupDialect, q *Query) (spans []span, gen, jobs int64, err error) {
	days, gen, jobs, _, err := l.rolledDays(ctx, d, q)
	if err != nil {
		return nil, 0, 0, err
	}
	return splitSpans(q, q.Bucket.Milliseconds(), days), gen, jobs, nil
}

// keyRange is the range of rollup_jobs.job_key over some days.
type keyRange struct{ lo, hi int64 }

// rolledDays reads the rolled-up days (ms) in q's window, the rollup
// generation, the largest number of jobs of one of those days, and the
// range of their job keys.
func (l *Library) rolledDays(ctx context.Context, d rollupDialect, q *Query) (days map[int64]bool, gen, jobs int64, keys keyRange, err error) {
	b := &builder{d: d}
	sql := "SELECT s.gen, epoch_ms(r.day), r.jobs, r.lo_key, r.hi_key FROM rollup_state AS s LEFT JOIN rollup_days AS r ON r.day >= " +
		b.time(q.From) + " AND r.day < " + b.time(q.To)
	rows, err := l.store.Query(ctx, sql, b.args...)
	if err != nil {
		return nil, 0, 0, keys, fmt.Errorf("read rollup days: %w", err)
	}
	if len(rows.Rows) == 0 {
		return nil, 0, 0, keys, fmt.Errorf("read rollup days: no rollup_state row")
	}
	days = map[int64]bool{}
	keys = keyRange{lo: math.MaxInt64, hi: 0}
	for _, r := range rows.Rows {
		g, err1 := toFloat(r[0])
		if err1 != nil {
			return nil, 0, 0, keys, fmt.Errorf("read rollup days: %w", err1)
		}
		gen = int64(g)
		if r[1] == nil {
			continue
		}
		var v [4]float64
		for i := range v {
			if v[i], err1 = toFloat(r[i+1]); err1 != nil {
				return nil, 0, 0, keys, fmt.Errorf("read rollup days: %w", err1)
			}
		}
		days[int64(v[0])] = true
		jobs = max(jobs, int64(v[1]))
		if v[3] > 0 { // a day with jobs
			keys.lo, keys.hi = min(keys.lo, int64(v[2])), max(keys.hi, int64(v[3]))
		}
	}
	if keys.hi == 0 {
		keys.lo = 0
	}
	return days, gen, jobs, keys, nil
}

// splitSpans splits q's window into runs of steps (ms, a whole number of
// days, aligned to the epoch) that lie inside the window and all of whose
// days are in days, and the rest.
func splitSpans(q *Query, step int64, days map[int64]bool) []span {
	var spans []span
	from, to := q.From.UnixMilli(), q.To.UnixMilli()
	for b := bucketFloor(q.From, time.Duration(step)*time.Millisecond); b < to; b += step {
		rolled := b >= from && b+step <= to
		for dd := b; rolled && dd < b+step; dd += day.Milliseconds() {
			rolled = days[dd]
		}
		s := span{max(b, from), min(b+step, to), rolled}
		if n := len(spans); n > 0 && spans[n-1].rolled == rolled {
			spans[n-1].to = s.to
			continue
		}
		spans = append(spans, s)
	}
	return spans
}

// rollupGen reads the rollup generation.
func (l *Library) rollupGen(ctx context.Context) (int64, error) {
	rows, err := l.store.Query(ctx, "SELECT gen FROM rollup_state")
	if err != nil {
		return 0, fmt.Errorf("read rollup generation: %w", err)
	}
	if len(rows.Rows) != 1 || len(rows.Rows[0]) != 1 {
		return 0, fmt.Errorf("read rollup generation: %d rows", len(rows.Rows))
	}
	g, err := toFloat(rows.Rows[0][0])
	return int64(g), err
}

// computeRolled answers q from rollups for the whole-day buckets that have
// them and from events for the others. Its statements run one after the
// other, so it checks that the rollups it read did not change meanwhile
// (their generation is the same after as before); ok is false when they
// did, and the caller tries again.
func (l *Library) computeRolled(ctx context.Context, d rollupDialect, m *metric, q *Query) (points []Point, ok bool, err error) {
	spans, gen, jobs, err := l.rollupPlan(ctx, d, q)
	if err != nil {
		return nil, false, err
	}
	for _, s := range spans {
		sub := *q
		sub.From, sub.To = time.UnixMilli(s.from).UTC(), time.UnixMilli(s.to).UTC()
		var p []Point
		if s.rolled {
			sql, args := rollupStatement(d, m, &sub, jobs)
			p, err = l.run(ctx, m, q, sql, args)
		} else {
			p, err = l.raw(ctx, d, m, q, &sub)
		}
		if err != nil {
			// A rollup rebuilt meanwhile with more jobs than planned
			// fails its statement: that is a change too.
			if g, gerr := l.rollupGen(ctx); gerr == nil && g != gen {
				return nil, false, nil
			}
			return nil, false, err
		}
		points = append(points, p...)
	}
	g, err := l.rollupGen(ctx)
	if err != nil {
		return nil, false, err
	}
	return points, g == gen, nil
}

// raw answers the part of q inside sub's window from events; sub is q with
// a window of whole buckets of q (but for q's own first and last).
func (l *Library) raw(ctx context.Context, d dialect, m *metric, q, sub *Query) ([]Point, error) {
	sql, args := statement(d, m, sub)
	return l.run(ctx, m, q, sql, args)
}

// run runs a statement and reads its points as points of q.
func (l *Library) run(ctx context.Context, m *metric, q *Query, sql string, args []any) ([]Point, error) {
	rows, err := l.store.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return readPoints(m, q, rows)
}

// rollupWhere is where for rollup rows of alias prefix ("" or "h."): whole
// days in the window, the metric's events (for rollup_events), the filters.
func (b *builder) rollupWhere(q *Query, prefix string, events []string) string {
	conds := []string{prefix + "day >= " + b.time(q.From), prefix + "day < " + b.time(q.To)}
	if len(events) > 0 {
		conds = append(conds, b.d.inList(prefix+"event", events))
	}
	fk := make([]string, 0, len(q.Filters))
	for k := range q.Filters {
		fk = append(fk, k)
	}
	sort.Strings(fk)
	for _, k := range fk {
		conds = append(conds, prefix+k+" = "+b.arg(q.Filters[k]))
	}
	return strings.Join(conds, " AND ")
}

// oneDim returns the one dimension q filters or groups by, or "" when it
// uses none; ok is false when it uses more than one.
func oneDim(q *Query) (dim string, ok bool) {
	for k := range q.Filters {
		if dim != "" && dim != k {
			return "", false
		}
		dim = k
	}
	for _, g := range q.GroupBy {
		if dim != "" && dim != g {
			return "", false
		}
		dim = g
	}
	return dim, true
}

// dimWhere and dimKeys are rollupWhere and rollupKeys for the per-dimension
// tables (rollup_dim_jobs, rollup_dim_rtt_bins), whose rows hold one
// dimension's value (or none) in value.
func (b *builder) dimWhere(q *Query, dim string) string {
	conds := []string{"day >= " + b.time(q.From), "day < " + b.time(q.To), "dim = '" + dim + "'"}
	if v, ok := q.Filters[dim]; ok {
		conds = append(conds, "value = "+b.arg(v))
	}
	return strings.Join(conds, " AND ")
}

func (b *builder) dimKeys(d rollupDialect, q *Query) (exprs, names []string) {
	for _, g := range q.GroupBy {
		exprs = append(exprs, "value AS "+g)
		names = append(names, g)
	}
	if q.Bucket > 0 {
		exprs = append(exprs, d.dayBucket("day", b.arg(q.Bucket.Milliseconds()))+" AS bucket_ms")
		names = append(names, "bucket_ms")
	}
	return exprs, names
}

// dimJobs are rollup_dim_jobs' columns counting the jobs a jobsNum or
// jobsDen condition selects.
var dimJobs = map[string]string{"true": "jobs", "errored": "errored", "connected": "connected"}

// rollupKeys are keys for rollup rows of alias prefix: the GroupBy columns,
// then the bucket start of the row's day.
func (b *builder) rollupKeys(d rollupDialect, q *Query, prefix string) (exprs, names []string) {
	for _, g := range q.GroupBy {
		exprs = append(exprs, prefix+g+" AS "+g)
		names = append(names, g)
	}
	if q.Bucket > 0 {
		exprs = append(exprs, d.dayBucket(prefix+"day", b.arg(q.Bucket.Milliseconds()))+" AS bucket_ms")
		names = append(names, "bucket_ms")
	}
	return exprs, names
}

// rollupStatement is statement for a window of whole rolled-up days, with
// the same columns. jobs is at least the largest job number of those days.
func rollupStatement(d rollupDialect, m *metric, q *Query, jobs int64) (string, []any) {
	b := &builder{d: d}
	dim, one := oneDim(q)
	if m.kind == kindQuantile {
		bins, bkeys, names, where := "rollup_rtt_bins", []string(nil), []string(nil), ""
		if one {
			bins = "rollup_dim_rtt_bins"
			bkeys, names = b.dimKeys(d, q)
			where = b.dimWhere(q, dim)
		} else {
			bkeys, names = b.rollupKeys(d, q, "")
			where = b.rollupWhere(q, "", nil)
		}
		hkeys, _ := b.rollupKeys(d, q, "h.")
		whereH := b.rollupWhere(q, "h.", nil)
		return d.rolledQuantile(bins, bkeys, names, where, hkeys, whereH, m.quantile), b.args
	}
	if m.jobsDen != "" {
		return rollupJobsStatement(d, b, m, q, jobs, dim, one), b.args
	}
	exprs, names := b.rollupKeys(d, q, "")
	where := b.rollupWhere(q, "", m.events)
	sql := "SELECT " + strings.Join(exprs, ", ") + ", CAST(coalesce(" + m.num(d, rollupSrc) + ", 0) AS DOUBLE) AS num"
	if m.den != nil {
		sql += ", CAST(coalesce(" + m.den(d, rollupSrc) + ", 0) AS DOUBLE) AS den"
	}
	return sql + " FROM rollup_events WHERE " + where + " GROUP BY " + strings.Join(names, ", "), b.args
}

// rollupJobsStatement counts jobs in rollup_jobs: both num and den
// (jobsNum set), or den only, num coming from rollup_events.
func rollupJobsStatement(d rollupDialect, b *builder, m *metric, q *Query, jobs int64, dim string, one bool) string {
	jobs = max(jobs, 1)
	// jobsSelect selects the bucket's job counts: from rollup_dim_jobs when
	// q uses at most one dimension, else from rollup_jobs.
	jobsSelect := func(cols ...string) (string, []string) {
		if one {
			exprs, names := b.dimKeys(d, q)
			where := b.dimWhere(q, dim)
			for _, c := range cols {
				exprs = append(exprs, "sum("+dimJobs[c]+")")
			}
			return "SELECT " + strings.Join(exprs, ", ") + " FROM rollup_dim_jobs WHERE " + where +
				" GROUP BY " + strings.Join(names, ", "), names
		}
		exprs, names := b.rollupKeys(d, q, "")
		where := b.rollupWhere(q, "", nil)
		for _, c := range cols {
			exprs = append(exprs, d.distinctJobs(c, jobs))
		}
		return "SELECT " + strings.Join(exprs, ", ") + " FROM rollup_jobs WHERE " + where +
			" GROUP BY " + strings.Join(names, ", "), names
	}
	if m.jobsNum != "" {
		sel, names := jobsSelect(m.jobsNum, m.jobsDen)
		return "SELECT " + strings.Join(names, ", ") + ", CAST(coalesce(num, 0) AS DOUBLE) AS num, CAST(coalesce(den, 0) AS DOUBLE) AS den" +
			" FROM (" + sel + ") AS j(" + strings.Join(names, ", ") + ", num, den)"
	}
	exprs, names := b.rollupKeys(d, q, "")
	nwhere := b.rollupWhere(q, "", m.events)
	n := "SELECT " + strings.Join(exprs, ", ") + ", " + m.num(d, rollupSrc) + " AS num FROM rollup_events WHERE " + nwhere +
		" GROUP BY " + strings.Join(names, ", ")
	j, _ := jobsSelect(m.jobsDen)
	return "SELECT " + strings.Join(names, ", ") + ", CAST(coalesce(n.num, 0) AS DOUBLE) AS num, CAST(coalesce(j.den, 0) AS DOUBLE) AS den" +
		" FROM (" + n + ") AS n FULL JOIN (" + j + ") AS j(" + strings.Join(names, ", ") + ", den) USING (" + strings.Join(names, ", ") + ")"
}

// mixable reports whether m over q may be answered by mixedStatement:
// unbucketed or bucketed by whole days, filtering and grouping only by
// rollupDims, and not a per-job metric that rollup_jobs cannot count.
func mixable(m *metric, q *Query) bool {
	if q.Bucket%day != 0 || (m.perJob != nil && m.jobsDen == "") {
		return false
	}
	return rolledDims(q)
}

// rolledDims reports whether q filters and groups only by rollupDims.
func rolledDims(q *Query) bool {
	for k := range q.Filters {
		if !slices.Contains(rollupDims, k) {
			return false
		}
	}
	for _, g := range q.GroupBy {
		if !slices.Contains(rollupDims, g) {
			return false
		}
	}
	return true
}

// computeMixed answers q in one statement that reads rollups for the whole
// rolled-up days inside the window and events for the rest (the partial
// days at its edges, days without rollups), and combines them exactly: it
// sums the parts' sums, unions the parts' job keys before counting them,
// and merges the parts' RTT bins, then their values in the level's bin. As
// computeRolled, ok is false when the rollups changed between the plan and
// the statement.
func (l *Library) computeMixed(ctx context.Context, d rollupDialect, m *metric, q *Query) (points []Point, ok bool, err error) {
	days, gen, _, keys, err := l.rolledDays(ctx, d, q)
	if err != nil {
		return nil, false, err
	}
	spans := splitSpans(q, day.Milliseconds(), days)
	if !slices.ContainsFunc(spans, func(s span) bool { return s.rolled }) {
		points, err := l.raw(ctx, d, m, q, q)
		return points, err == nil, err
	}
	sql, args := mixedStatement(d, m, q, spans, keys)
	points, err = l.run(ctx, m, q, sql, args)
	if err != nil {
		if g, gerr := l.rollupGen(ctx); gerr == nil && g != gen {
			return nil, false, nil
		}
		return nil, false, err
	}
	g, err := l.rollupGen(ctx)
	if err != nil {
		return nil, false, err
	}
	return points, g == gen, nil
}

// mixedStatement is statement for q, with the same columns, reading
// rollup tables for the rolled spans and events for the others.
func mixedStatement(d rollupDialect, m *metric, q *Query, spans []span, keys keyRange) (string, []any) {
	b := &builder{d: d}
	names := slices.Clone(q.GroupBy)
	if q.Bucket > 0 {
		names = append(names, "bucket_ms")
	}
	subs := make([]*Query, len(spans))
	for i, s := range spans {
		sub := *q
		sub.From, sub.To = time.UnixMilli(s.from).UTC(), time.UnixMilli(s.to).UTC()
		subs[i] = &sub
	}
	switch {
	case m.kind == kindQuantile:
		return mixedQuantile(b, d, m, q, spans, subs, names), b.args
	case m.jobsDen != "":
		return mixedJobs(b, d, m, spans, subs, names, keys), b.args
	}
	return mixedSums(b, d, m, spans, subs, names, true), b.args
}

// cols writes names as the start of a select list ("a, b, ") and group
// as a GROUP BY clause, empty without names.
func cols(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return strings.Join(names, ", ") + ", "
}

func groupBy(names ...string) string {
	if len(names) == 0 {
		return ""
	}
	return " GROUP BY " + strings.Join(names, ", ")
}

func unionAll(parts []string) string {
	return "(" + strings.Join(parts, ") UNION ALL (") + ")"
}

// mixedSums sums num (and den, when withDen and m has one) over the
// parts: rollup_events for rolled spans, events for the others.
func mixedSums(b *builder, d rollupDialect, m *metric, spans []span, subs []*Query, names []string, withDen bool) string {
	withDen = withDen && m.den != nil
	parts := make([]string, len(spans))
	for i, s := range spans {
		if s.rolled {
			exprs, _ := b.rollupKeys(d, subs[i], "")
			where := b.rollupWhere(subs[i], "", m.events)
			sel := cols(exprs) + m.num(d, rollupSrc) + " AS num"
			if withDen {
				sel += ", " + m.den(d, rollupSrc) + " AS den"
			}
			parts[i] = "SELECT " + sel + " FROM rollup_events WHERE " + where + groupBy(names...)
			continue
		}
		exprs, _ := b.keys(subs[i])
		where := b.where(subs[i], m.events, m.sessionsOnly)
		sel := cols(exprs) + m.num(d, rawSrc) + " AS num"
		if withDen {
			sel += ", " + m.den(d, rawSrc) + " AS den"
		}
		parts[i] = "SELECT " + sel + " FROM events WHERE " + where + groupBy(names...)
	}
	sel := cols(names) + "CAST(coalesce(sum(num), 0) AS DOUBLE) AS num"
	if withDen {
		sel += ", CAST(coalesce(sum(den), 0) AS DOUBLE) AS den"
	}
	return "SELECT " + sel + " FROM (" + unionAll(parts) + ") AS p" + groupBy(names...)
}

// mixedJobs counts distinct jobs over the union of rollup_jobs' job keys
// (for rolled spans) and the jobs of events (for the others), each with
// its errored and connected flags, so that a job seen on several days, or
// on a rolled day and at an edge, counts once: an edge's job that has a
// key in the rolled days' range (keys) is counted by its key, any other by
// its job_id (it is in none of the rolled days). num comes from the same
// union (jobsNum set) or from mixedSums.
func mixedJobs(b *builder, d rollupDialect, m *metric, spans []span, subs []*Query, names []string, keys keyRange) string {
	var n string
	if m.jobsNum == "" {
		n = mixedSums(b, d, m, spans, subs, names, false)
	}
	// Without jobsNum only jobsDen's jobs count, which (connected) are
	// those of m.events: the edges' other events need not be read.
	var events []string
	if m.jobsNum == "" {
		events = m.events
	}
	errored := d.boolOr(d.inList("event", []string{jobcast.EventError, jobcast.EventConnectFailed})) + " AS errored"
	connected := d.boolOr(d.inList("event", []string{jobcast.EventConnected, jobcast.EventReconnected})) + " AS connected"
	inRange := fmt.Sprintf("i.job_key BETWEEN %d AND %d", keys.lo, keys.hi)
	// The events' parts first, looked up in rollup_job_ids together (one
	// scan of it), then the rollups' parts; placeholders follow that order.
	var raw, parts []string
	for i, s := range spans {
		if !s.rolled {
			exprs, _ := b.keys(subs[i])
			where := b.where(subs[i], events, true)
			raw = append(raw, "SELECT "+cols(exprs)+"job_id, "+errored+", "+connected+
				" FROM events WHERE "+where+groupBy(append(slices.Clone(names), "job_id")...))
		}
	}
	if len(raw) > 0 {
		parts = append(parts, "SELECT "+cols(names)+"CASE WHEN "+inRange+" THEN i.job_key END AS k, CASE WHEN "+inRange+
			" THEN NULL ELSE e.job_id END AS job_id, errored, connected FROM ("+unionAll(raw)+") AS e LEFT JOIN rollup_job_ids AS i USING (job_id)")
	}
	for i, s := range spans {
		if s.rolled {
			exprs, _ := b.rollupKeys(d, subs[i], "")
			where := b.rollupWhere(subs[i], "", nil)
			parts = append(parts, "SELECT "+cols(exprs)+"job_key AS k, CAST(NULL AS VARCHAR) AS job_id, errored, connected FROM rollup_jobs WHERE "+where)
		}
	}
	count := func(cond string) string { return d.unionJobs(cond, keys.lo, keys.hi) }
	jsel := cols(names)
	if m.jobsNum != "" {
		jsel += count(m.jobsNum) + " AS num, "
	}
	jsel += count(m.jobsDen) + " AS den"
	j := "SELECT " + jsel + " FROM (" + unionAll(parts) + ") AS u" + groupBy(names...)
	if m.jobsNum != "" {
		return "SELECT " + cols(names) + "CAST(coalesce(num, 0) AS DOUBLE) AS num, CAST(coalesce(den, 0) AS DOUBLE) AS den FROM (" + j + ") AS j"
	}
	join := " AS n, (" + j + ") AS j"
	if len(names) > 0 {
		join = " AS n FULL JOIN (" + j + ") AS j USING (" + strings.Join(names, ", ") + ")"
	}
	return "SELECT " + cols(names) + "CAST(coalesce(n.num, 0) AS DOUBLE) AS num, CAST(coalesce(j.den, 0) AS DOUBLE) AS den FROM (" + n + ")" + join
}

// mixedQuantile is rolledQuantile over the union of the parts: the bins'
// weights from rollup_rtt_bins or rollup_dim_rtt_bins (rolled spans) and
// from events binned alike (the others); then the values in each group's
// bin from rollup_rtt and from events.
func mixedQuantile(b *builder, d rollupDialect, m *metric, q *Query, spans []span, subs []*Query, names []string) string {
	dim, one := oneDim(q)
	bins := make([]string, len(spans))
	for i, s := range spans {
		switch {
		case s.rolled && one:
			exprs, _ := b.dimKeys(d, subs[i])
			bins[i] = "SELECT " + cols(exprs) + "bin, w FROM rollup_dim_rtt_bins WHERE " + b.dimWhere(subs[i], dim)
		case s.rolled:
			exprs, _ := b.rollupKeys(d, subs[i], "")
			bins[i] = "SELECT " + cols(exprs) + "bin, w FROM rollup_rtt_bins WHERE " + b.rollupWhere(subs[i], "", nil)
		default:
			exprs, _ := b.keys(subs[i])
			bins[i] = "SELECT " + cols(exprs) + d.rolledBin(m.value) + " AS bin, " + w + " AS w FROM events WHERE " +
				b.where(subs[i], m.events, false)
		}
	}
	tcols := make([]string, len(names))
	for i, n := range names {
		tcols[i] = "t." + n + " AS " + n
	}
	vals := make([]string, len(spans))
	for i, s := range spans {
		sel := "SELECT " + cols(tcols)
		if s.rolled {
			hkeys, _ := b.rollupKeys(d, subs[i], "h.")
			on := []string{"h.bin = t.bin"}
			for j, n := range names {
				on = append(on, strings.TrimSuffix(hkeys[j], " AS "+n)+" = t."+n)
			}
			vals[i] = sel + "h.rtt_ms AS v, h.w AS w, t.before AS before, t.tw AS tw FROM rollup_rtt AS h JOIN t ON " +
				strings.Join(on, " AND ") + " WHERE " + b.rollupWhere(subs[i], "h.", nil)
			continue
		}
		exprs, _ := b.keys(subs[i])
		on := []string{"r.bin = t.bin"}
		for _, n := range names {
			on = append(on, "r."+n+" = t."+n)
		}
		vals[i] = sel + "r.v AS v, r.w AS w, t.before AS before, t.tw AS tw FROM (SELECT " + cols(exprs) +
			d.rolledBin(m.value) + " AS bin, " + m.value + " AS v, " + w + " AS w FROM events WHERE " +
			b.where(subs[i], m.events, false) + ") AS r JOIN t ON " + strings.Join(on, " AND ")
	}
	part, using := "", " ON true"
	if len(names) > 0 {
		part = "PARTITION BY " + strings.Join(names, ", ") + " "
		using = " USING (" + strings.Join(names, ", ") + ")"
	}
	level := fmt.Sprint(m.quantile)
	c := cols(names)
	var sb strings.Builder
	sb.WriteString("WITH b AS MATERIALIZED (SELECT " + c + "bin, CAST(sum(w) AS BIGINT) AS bw FROM (" + unionAll(bins) + ") AS p" + groupBy(append(slices.Clone(names), "bin")...) + "), ")
	sb.WriteString("tot AS (SELECT " + c + "CAST(sum(bw) AS BIGINT) AS tw FROM b" + groupBy(names...) + "), ")
	sb.WriteString("c AS (SELECT " + c + "bin, bw, sum(bw) OVER (" + part + "ORDER BY bin ROWS UNBOUNDED PRECEDING) AS cw FROM b), ")
	sb.WriteString("t AS MATERIALIZED (SELECT " + c + "min(bin) AS bin, arg_min(cw - bw, bin) AS before, any_value(tw) AS tw FROM c JOIN tot" + using +
		" WHERE cw * 10000 >= " + level + " * tw" + groupBy(names...) + "), ")
	sb.WriteString("x AS (SELECT " + c + "v, CAST(sum(w) AS BIGINT) AS w, any_value(before) AS before, any_value(tw) AS tw FROM (" + unionAll(vals) + ") AS u" +
		groupBy(append(slices.Clone(names), "v")...) + "), ")
	sb.WriteString("y AS (SELECT " + c + "v, tw, before + sum(w) OVER (" + part + "ORDER BY v ROWS UNBOUNDED PRECEDING) AS cw FROM x) ")
	sb.WriteString("SELECT " + c + "CAST(min(v) FILTER (WHERE cw * 10000 >= " + level + " * tw) AS DOUBLE) AS value, CAST(max(tw) AS DOUBLE) AS weight FROM y" + groupBy(names...))
	return sb.String()
}
