package metrics

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
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
//     the per-day job numbers and a bitstring per group.
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
}

// rollable reports whether m over q may read rollups for whole days: q is
// bucketed by whole days (by exactly one day for distinct-job counts, whose
// job numbers are per day) and filters and groups only by rollupDims.
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
	b := &builder{d: d}
	sql := "SELECT s.gen, epoch_ms(r.day), r.jobs FROM rollup_state AS s LEFT JOIN rollup_days AS r ON r.day >= " +
		b.time(q.From) + " AND r.day < " + b.time(q.To)
	rows, err := l.store.Query(ctx, sql, b.args...)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("read rollup days: %w", err)
	}
	if len(rows.Rows) == 0 {
		return nil, 0, 0, fmt.Errorf("read rollup days: no rollup_state row")
	}
	days := map[int64]bool{}
	for _, r := range rows.Rows {
		g, err1 := toFloat(r[0])
		if err1 != nil {
			return nil, 0, 0, fmt.Errorf("read rollup days: %w", err1)
		}
		gen = int64(g)
		if r[1] == nil {
			continue
		}
		ms, err1 := toFloat(r[1])
		n, err2 := toFloat(r[2])
		if err1 != nil || err2 != nil {
			return nil, 0, 0, fmt.Errorf("read rollup days: %T %T", r[1], r[2])
		}
		days[int64(ms)] = true
		jobs = max(jobs, int64(n))
	}
	from, to, step := q.From.UnixMilli(), q.To.UnixMilli(), q.Bucket.Milliseconds()
	for b := bucketFloor(q.From, q.Bucket); b < to; b += step {
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
	return spans, gen, jobs, nil
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
	exprs = append(exprs, d.dayBucket("day", b.arg(q.Bucket.Milliseconds()))+" AS bucket_ms")
	names = append(names, "bucket_ms")
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
	exprs = append(exprs, d.dayBucket(prefix+"day", b.arg(q.Bucket.Milliseconds()))+" AS bucket_ms")
	names = append(names, "bucket_ms")
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
