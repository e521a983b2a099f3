package experiment

import "strconv"

// dialect is what the analysis SQL needs that differs between the engines
// behind jobcast.TelemetryStore; the rest of it is SQL both accept. As in
// package metrics, ClickHouse is one more implementation:
// quantileExactLow(level)(col) for quantile.
type dialect interface {
	// quantile is the aggregate "the smallest value of col whose
	// cumulative share reaches level" (a discrete quantile: a value that
	// occurred, not an interpolation).
	quantile(col string, level float64) string
}

var dialects = map[string]dialect{"duckdb": duckDB{}}

type duckDB struct{}

func (duckDB) quantile(col string, level float64) string {
	return "quantile_disc(" + col + ", " + strconv.FormatFloat(level, 'f', -1, 64) + ")"
}
