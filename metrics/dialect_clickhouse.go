package metrics

import (
	"strconv"
	"strings"
	"time"
)

// clickHouse is ClickHouse's dialect (the clickhouse package's store). Its ts
// column is Decimal64(3), Unix seconds, because the oldest supported server
// (18.16) has no DateTime64; the store binds time.Time arguments as
// Decimal64(3) literals. It keeps no rollups, so it does not implement
// rollupDialect and every metric reads raw events.
type clickHouse struct{}

// timeArg binds the time itself: the store turns it into a literal of ts's
// type.
func (clickHouse) timeArg(t time.Time) (string, any) { return "?", t }

func (clickHouse) bucketStart(width string) string {
	return "(toInt64(ts * 1000) - modulo(toInt64(ts * 1000), " + width + "))"
}

func (clickHouse) inList(col string, values []string) string {
	if len(values) == 1 {
		return col + " = '" + values[0] + "'"
	}
	return col + " IN ('" + strings.Join(values, "', '") + "')"
}

func (clickHouse) sumIf(expr, cond string) string { return "sumIf(" + expr + ", " + cond + ")" }

// boolOr: max of a condition is 1 when it held for any row; the store
// returns UInt8 as a bool.
func (clickHouse) boolOr(cond string) string { return "max(" + cond + ")" }

func (clickHouse) countDistinctIf(col, cond string) string {
	return "uniqExactIf(" + col + ", " + cond + ")"
}

// weightedQuantile: quantileExactWeighted answers the smallest value whose
// cumulative weight reaches level·Σw, the definition DuckDB's two passes
// implement; the plain quantile would be approximate (reservoir sampling).
// A group without weight answers NULL, as on DuckDB.
func (clickHouse) weightedQuantile(keys, _ []string, value, where string, bp int) string {
	level := strconv.FormatFloat(float64(bp)/10000, 'f', -1, 64)
	var sb strings.Builder
	sb.WriteString("SELECT ")
	for _, k := range keys {
		sb.WriteString(k + ", ")
	}
	sb.WriteString("if(sum(" + w + ") = 0, NULL, toFloat64(quantileExactWeighted(" + level + ")(" + value + ", toUInt64(" + w + ")))) AS value, ")
	sb.WriteString("toFloat64(sum(" + w + ")) AS weight FROM events WHERE " + where)
	if len(keys) > 0 {
		names := make([]string, len(keys))
		for i, k := range keys {
			// A key is a column or "expr AS name"; group by the name.
			if j := strings.LastIndex(k, " AS "); j >= 0 {
				k = k[j+4:]
			}
			names[i] = k
		}
		sb.WriteString(" GROUP BY " + strings.Join(names, ", "))
	}
	return sb.String()
}
