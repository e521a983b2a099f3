package experiment

import "strconv"

// dialect is what the analysis SQL needs that differs between the engines
// behind jobcast.TelemetryStore; the rest of it is SQL both accept (CASE,
// CAST AS DOUBLE, count(DISTINCT), joins on equality with the time
// condition in WHERE).
type dialect interface {
	// quantile is the aggregate "the smallest value of col whose
	// cumulative share reaches level" (a discrete quantile: a value that
	// occurred, not an interpolation).
	quantile(col string, level float64) string
}

var dialects = map[string]dialect{"duckdb": duckDB{}, "clickhouse": clickHouse{}}

type duckDB struct{}

func (duckDB) quantile(col string, level float64) string {
	return "quantile_disc(" + col + ", " + strconv.FormatFloat(level, 'f', -1, 64) + ")"
}

// clickHouse is ClickHouse's dialect, not yet run against a server: its
// quantileExactLow picks a sample value at the level (the lower one at a
// tie), as quantile_disc does.
type clickHouse struct{}

func (clickHouse) quantile(col string, level float64) string {
	return "quantileExactLow(" + strconv.FormatFloat(level, 'f', -1, 64) + ")(" + col + ")"
}
