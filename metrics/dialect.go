package metrics

import (
	"strconv"
	"strings"
	"time"
)

// dialect holds what differs between the SQL engines behind
// jobcast.TelemetryStore. Everything else (the WHERE clause, grouping, the
// metric formulas) is plain SQL both DuckDB and ClickHouse accept.
//
// A ClickHouse dialect is one more implementation: sumIf(expr, cond),
// uniqExact(col) / uniqExactIf(col, cond), a bucket start of
// toUnixTimestamp64Milli(ts) - toUnixTimestamp64Milli(ts) % width, and
// quantileExactWeighted(level)(value, sample_interval), whose definition (the
// smallest value whose cumulative weight reaches ⌈level·Σw⌉) matches the
// window-function form below.
type dialect interface {
	// timeArg returns the SQL for a bound time argument comparable with the
	// ts column and the value to bind to its placeholder.
	timeArg(t time.Time) (sql string, arg any)
	// bucketStart returns the start of ts's bucket in milliseconds since the
	// epoch, as a BIGINT; width is a placeholder for the bucket width in
	// milliseconds and must appear exactly once.
	bucketStart(width string) string
	// sumIf sums expr over the rows where cond holds; NULL or 0 when none.
	sumIf(expr, cond string) string
	// countDistinct counts the distinct values of col.
	countDistinct(col string) string
	// countDistinctIf counts the distinct values of col over rows where cond
	// holds.
	countDistinctIf(col, cond string) string
	// weightedQuantile returns a statement answering, per group, the
	// smallest value of column value whose cumulative weight (sum of
	// sample_interval in value order) is at least level·Σw, where level is
	// bp/10000: columns keys (aliased as names), "value" (NULL without
	// samples) and "weight" (Σw). where is the full WHERE condition; any
	// placeholders in keys come before those in where, as in a plain
	// SELECT … FROM events WHERE … statement.
	weightedQuantile(keys, names []string, value, where string, bp int) string
}

// dialects maps jobcast.TelemetryStore.Dialect() to its implementation.
var dialects = map[string]dialect{
	"duckdb": duckDB{},
}

// duckDB is DuckDB's dialect. ts is a TIMESTAMP (UTC, no zone).
type duckDB struct{}

// timeArg binds microseconds since the epoch and converts them in SQL: the
// driver would bind a time.Time as TIMESTAMP WITH TIME ZONE, and comparing
// that with a plain TIMESTAMP column casts every row through the session's
// time zone.
func (duckDB) timeArg(t time.Time) (string, any) {
	return "make_timestamp(?)", t.UnixMicro()
}

func (duckDB) bucketStart(width string) string {
	return "(epoch_ms(ts) - epoch_ms(ts) % " + width + ")"
}

func (duckDB) sumIf(expr, cond string) string {
	return "sum(" + expr + ") FILTER (WHERE " + cond + ")"
}

func (duckDB) countDistinct(col string) string { return "count(DISTINCT " + col + ")" }

func (duckDB) countDistinctIf(col, cond string) string {
	return "count(DISTINCT " + col + ") FILTER (WHERE " + cond + ")"
}

// weightedQuantile: DuckDB has no weighted quantile, so the samples are first
// collapsed to (group, value, Σw), then a running sum of the weight in value
// order finds the first value at or past the level.
func (duckDB) weightedQuantile(keys, names []string, value, where string, bp int) string {
	var sb strings.Builder
	sb.WriteString("WITH h AS (SELECT ")
	for _, k := range keys {
		sb.WriteString(k + ", ")
	}
	sb.WriteString(value + " AS v, sum(" + w + ") AS w FROM events WHERE " + where + " GROUP BY ALL), ")
	part := ""
	if len(names) > 0 {
		part = "PARTITION BY " + strings.Join(names, ", ")
	}
	sb.WriteString("c AS (SELECT ")
	for _, n := range names {
		sb.WriteString(n + ", ")
	}
	sb.WriteString("v, sum(w) OVER (" + part + " ORDER BY v ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cw, ")
	sb.WriteString("sum(w) OVER (" + part + ") AS tw FROM h) SELECT ")
	for _, n := range names {
		sb.WriteString(n + ", ")
	}
	level := strconv.Itoa(bp)
	sb.WriteString("CAST(min(v) FILTER (WHERE cw * 10000 >= " + level + " * tw) AS DOUBLE) AS value, ")
	sb.WriteString("CAST(max(tw) AS DOUBLE) AS weight FROM c")
	if len(names) > 0 {
		sb.WriteString(" GROUP BY " + strings.Join(names, ", "))
	}
	return sb.String()
}
