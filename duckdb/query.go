package duckdb

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

// Defaults for a zero field of jobcast.QueryLimits.
const (
	DefaultQueryTimeout = 30 * time.Second
	DefaultQueryMaxRows = 10_000
)

// Query implements jobcast.TelemetryStore. It is for SQL this program wrote:
// it runs unchecked, and several statements separated by ';' all run.
func (s *Store) Query(ctx context.Context, query string, args ...any) (*jobcast.Rows, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query events: %w", err)
	}
	defer rows.Close()
	out, err := collect(rows, -1)
	if err != nil {
		return nil, fmt.Errorf("query events: %w", err)
	}
	return out, nil
}

// Refusals of QueryUntrusted. They describe the rule broken, never DuckDB's
// state.
var (
	errNotSelect  = badRequest("only a single SELECT statement is allowed")
	errEmpty      = badRequest("the query is empty")
	errFileAccess = badRequest("file access is disabled")
	errReadOnly   = badRequest("the query may not write")
	errMemory     = badRequest("the query exceeded the memory limit")
	errExtension  = badRequest("extensions are disabled")
	errParams     = badRequest("query parameters (?, $1, $name) are not supported")
)

func badRequest(msg string) *jobcast.Error { return jobcast.Errorf(protocol.ErrBadRequest, "%s", msg) }

// QueryUntrusted implements jobcast.TelemetryStore: it runs SQL an admin
// typed. Besides the settings of every Store (no files, no network, no
// extensions, a memory limit, all locked), it requires DuckDB's parser to
// see exactly one SELECT (json_serialize_sql serializes SELECTs only) that
// calls no table function outside a short allowlist, runs it in a READ ONLY
// transaction, wrapped as
//
//	SELECT * FROM (<query>) LIMIT MaxRows+1
//
// and interrupts it at Timeout. A zero MaxRows or Timeout means
// DefaultQueryMaxRows or DefaultQueryTimeout. Errors in the query itself
// (an unknown column, a type mismatch) are answered with DuckDB's message,
// which is about the query, not the server.
func (s *Store) QueryUntrusted(ctx context.Context, query string, limits jobcast.QueryLimits) (*jobcast.Rows, error) {
	if limits.MaxRows <= 0 {
		limits.MaxRows = DefaultQueryMaxRows
	}
	if limits.Timeout <= 0 {
		limits.Timeout = DefaultQueryTimeout
	}
	query = strings.TrimSpace(query)
	for strings.HasSuffix(query, ";") {
		query = strings.TrimSpace(strings.TrimSuffix(query, ";"))
	}
	if query == "" {
		return nil, errEmpty
	}
	qctx, cancel := context.WithTimeout(ctx, limits.Timeout)
	defer cancel()
	out, err := s.queryUntrusted(qctx, query, limits.MaxRows)
	if err == nil {
		return out, nil
	}
	var je *jobcast.Error
	switch {
	case errors.As(err, &je):
		return nil, err
	case ctx.Err() != nil:
		return nil, fmt.Errorf("untrusted query: %w", ctx.Err())
	case qctx.Err() != nil:
		return nil, jobcast.Errorf(protocol.ErrBadRequest, "the query exceeded the time limit of %s", limits.Timeout)
	}
	if r := refusal(err); r != nil {
		return nil, r
	}
	return nil, fmt.Errorf("untrusted query: %w", err)
}

func (s *Store) queryUntrusted(ctx context.Context, query string, maxRows int) (*jobcast.Rows, error) {
	if err := s.checkSelect(ctx, query); err != nil {
		return nil, err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION READ ONLY"); err != nil {
		return nil, err
	}
	// Whatever happened, end the transaction before the connection goes
	// back to the pool; ROLLBACK must run even when ctx has expired.
	defer conn.ExecContext(context.Background(), "ROLLBACK")
	// The newline ends a trailing -- comment. The query parsed as one
	// statement, so its parentheses, quotes and comments are balanced
	// and it cannot close the subquery early.
	wrapped := "SELECT * FROM (\n" + query + "\n) AS untrusted_query LIMIT " + strconv.Itoa(maxRows+1)
	rows, err := conn.QueryContext(ctx, wrapped)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out, err := collect(rows, maxRows+1)
	if err != nil {
		return nil, err
	}
	if len(out.Rows) > maxRows {
		out.Rows = out.Rows[:maxRows]
		out.Truncated = true
	}
	return out, nil
}

// checkSelect asks DuckDB's parser whether query is exactly one SELECT
// (json_serialize_sql refuses to serialize anything else) and checks the
// functions it calls.
func (s *Store) checkSelect(ctx context.Context, query string) error {
	var text string
	if err := s.db.QueryRowContext(ctx, `SELECT json_serialize_sql(?::VARCHAR)::VARCHAR`, query).Scan(&text); err != nil {
		return fmt.Errorf("parse untrusted query: %w", err)
	}
	var parsed struct {
		Error        bool   `json:"error"`
		ErrorType    string `json:"error_type"`
		ErrorMessage string `json:"error_message"`
		Statements   []any  `json:"statements"`
	}
	if err := json.Unmarshal([]byte(text), &parsed); err != nil {
		return fmt.Errorf("parse untrusted query: %w", err)
	}
	switch {
	case parsed.Error && parsed.ErrorType == "parser":
		return jobcast.Errorf(protocol.ErrBadRequest, "syntax error: %s", strings.TrimPrefix(parsed.ErrorMessage, "syntax error "))
	case parsed.Error:
		return errNotSelect
	case len(parsed.Statements) == 0:
		return errEmpty
	case len(parsed.Statements) != 1:
		return errNotSelect
	}
	if stmt, ok := parsed.Statements[0].(map[string]any); ok {
		if params, _ := stmt["named_param_map"].([]any); len(params) > 0 {
			return errParams
		}
	}
	return checkFunctions(parsed.Statements[0])
}

// allowedTableFunctions are the table functions an untrusted query may
// call: generators and read-only catalog views. The others change state
// although called from a SELECT (checkpoint, enable_logging,
// enable_profiling, which also survive on the pooled connection), run SQL
// given as a string (query, query_table, json_execute_serialized_sql), read
// files (refused anyway without external access) or scan raw memory
// (arrow_scan). An allowlist, so that functions a newer DuckDB adds are
// refused until someone looks at them.
var allowedTableFunctions = map[string]bool{
	"range": true, "generate_series": true, "unnest": true, "repeat": true, "repeat_row": true,
	"json_each": true, "json_tree": true, "summary": true, "histogram": true, "histogram_values": true,
	"duckdb_columns": true, "duckdb_constraints": true, "duckdb_databases": true, "duckdb_dependencies": true,
	"duckdb_functions": true, "duckdb_indexes": true, "duckdb_keywords": true, "duckdb_memory": true,
	"duckdb_optimizers": true, "duckdb_schemas": true, "duckdb_sequences": true, "duckdb_settings": true,
	"duckdb_tables": true, "duckdb_temporary_files": true, "duckdb_types": true, "duckdb_views": true,
	"pragma_collations": true, "pragma_database_size": true, "pragma_metadata_info": true,
	"pragma_platform": true, "pragma_show": true, "pragma_storage_info": true, "pragma_table_info": true,
	"pragma_version": true, "pg_timezone_names": true, "icu_calendar_names": true,
}

// deniedFunctions are scalar functions with side effects.
var deniedFunctions = map[string]bool{
	"write_log": true, "nextval": true, "setseed": true,
}

// checkFunctions walks a statement's syntax tree as json_serialize_sql
// writes it and refuses table functions not allowed and scalar functions
// denied.
func checkFunctions(node any) error {
	switch n := node.(type) {
	case []any:
		for _, c := range n {
			if err := checkFunctions(c); err != nil {
				return err
			}
		}
	case map[string]any:
		if n["type"] == "TABLE_FUNCTION" {
			if fn, ok := n["function"].(map[string]any); ok {
				name, _ := fn["function_name"].(string)
				if !allowedTableFunctions[strings.ToLower(name)] {
					if isFileFunction(name) {
						return errFileAccess
					}
					return jobcast.Errorf(protocol.ErrBadRequest, "table function %s is not allowed", name)
				}
				// Its arguments may call functions too.
				return checkFunctions(fn["children"])
			}
		}
		if n["class"] == "FUNCTION" {
			if name, _ := n["function_name"].(string); deniedFunctions[strings.ToLower(name)] {
				return jobcast.Errorf(protocol.ErrBadRequest, "function %s is not allowed", name)
			}
		}
		for _, c := range n {
			if err := checkFunctions(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// isFileFunction reports whether a table function reads files, so that its
// refusal says why.
func isFileFunction(name string) bool {
	name = strings.ToLower(name)
	return strings.HasPrefix(name, "read_") || strings.HasPrefix(name, "parquet_") ||
		name == "glob" || name == "sniff_csv"
}

// refusal turns a DuckDB error caused by the query into a bad request, or
// returns nil for failures of the server.
func refusal(err error) *jobcast.Error {
	var de *duckdb.Error
	if !errors.As(err, &de) {
		return nil
	}
	switch de.Type {
	case duckdb.ErrorTypePermission:
		return errFileAccess
	case duckdb.ErrorTypeMissingExtension, duckdb.ErrorTypeAutoLoad:
		return errExtension
	case duckdb.ErrorTypeOutOfMemory:
		return errMemory
	case duckdb.ErrorTypeTransaction:
		if strings.Contains(de.Msg, "read-only") {
			return errReadOnly
		}
		return nil
	case duckdb.ErrorTypeParser, duckdb.ErrorTypeSyntax, duckdb.ErrorTypeBinder, duckdb.ErrorTypeCatalog,
		duckdb.ErrorTypeConversion, duckdb.ErrorTypeOutOfRange, duckdb.ErrorTypeDivideByZero,
		duckdb.ErrorTypeMismatchType, duckdb.ErrorTypeInvalidType, duckdb.ErrorTypeInvalidInput,
		duckdb.ErrorTypeParameterNotResolved, duckdb.ErrorTypeParameterNotAllowed, duckdb.ErrorTypeNotImplemented,
		duckdb.ErrorTypeExpression, duckdb.ErrorTypeDecimal, duckdb.ErrorTypeObjectSize:
		// The first line names the problem; the lines after it quote the
		// wrapped query, which the admin did not write.
		// The class ("Binder Error: ") is DuckDB's jargon.
		msg, _, _ := strings.Cut(de.Msg, "\n")
		if class, rest, ok := strings.Cut(msg, ": "); ok && strings.HasSuffix(class, " Error") {
			msg = rest
		}
		return badRequest(msg)
	}
	return nil
}

// collect reads at most limit rows (all if limit < 0), normalizing values.
func collect(rows *sql.Rows, limit int) (*jobcast.Rows, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	dbTypes := make([]string, len(types))
	for i, t := range types {
		dbTypes[i] = t.DatabaseTypeName()
	}
	out := &jobcast.Rows{Columns: cols, Rows: [][]any{}}
	dest := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range dest {
		ptrs[i] = &dest[i]
	}
	for (limit < 0 || len(out.Rows) < limit) && rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]any, len(cols))
		for i, v := range dest {
			row[i] = normalize(v, dbTypes[i])
		}
		out.Rows = append(out.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// normalize maps a duckdb-go value to int64, float64, string, bool,
// time.Time or nil, the types of jobcast.Rows. Integers wider than int64
// (HUGEINT, which SUM returns) become int64 when they fit and float64
// otherwise; DECIMAL becomes float64; UUID, INTERVAL and BLOB become
// strings; LIST, STRUCT, MAP and UNION become their JSON text.
func normalize(v any, dbType string) any {
	switch v := v.(type) {
	case nil, int64, float64, string, bool, time.Time:
		return v
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case int:
		return int64(v)
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	case uint64:
		if v > math.MaxInt64 {
			return float64(v)
		}
		return int64(v)
	case float32:
		return float64(v)
	case *big.Int:
		if v.IsInt64() {
			return v.Int64()
		}
		f, _ := new(big.Float).SetInt(v).Float64()
		return f
	case duckdb.Decimal:
		return v.Float64()
	case duckdb.Interval:
		return formatInterval(v)
	case []byte:
		if dbType == "UUID" && len(v) == 16 {
			h := hex.EncodeToString(v)
			return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
		}
		return string(v)
	}
	b, err := json.Marshal(jsonable(v))
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// jsonable normalizes the values inside a nested value.
func jsonable(v any) any {
	switch v := v.(type) {
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = jsonable(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = jsonable(e)
		}
		return out
	case duckdb.OrderedMap:
		out := make(map[string]any, v.Len())
		keys, values := v.Keys(), v.Values()
		for i := range keys {
			out[fmt.Sprint(jsonable(keys[i]))] = jsonable(values[i])
		}
		return out
	case duckdb.Map:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[fmt.Sprint(jsonable(k))] = jsonable(e)
		}
		return out
	case duckdb.Union:
		return jsonable(v.Value)
	case duckdb.Bit:
		return v.String()
	}
	return normalize(v, "")
}

// formatInterval writes an INTERVAL as DuckDB prints it, e.g.
// "1 month 2 days 03:04:05.5".
func formatInterval(iv duckdb.Interval) string {
	var parts []string
	plural := func(n int64, unit string) {
		if n == 0 {
			return
		}
		if n == 1 || n == -1 {
			parts = append(parts, fmt.Sprintf("%d %s", n, unit))
			return
		}
		parts = append(parts, fmt.Sprintf("%d %ss", n, unit))
	}
	plural(int64(iv.Months)/12, "year")
	plural(int64(iv.Months)%12, "month")
	plural(int64(iv.Days), "day")
	if iv.Micros != 0 || len(parts) == 0 {
		m := iv.Micros
		sign := ""
		if m < 0 {
			sign, m = "-", -m
		}
		t := fmt.Sprintf("%s%02d:%02d:%02d", sign, m/3_600_000_000, m/60_000_000%60, m/1_000_000%60)
		if us := m % 1_000_000; us != 0 {
			t += strings.TrimRight(fmt.Sprintf(".%06d", us), "0")
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, " ")
}
