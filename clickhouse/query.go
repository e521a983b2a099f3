package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"reflect"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
	"github.com/shopspring/decimal"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

// Defaults for a zero field of jobcast.QueryLimits.
const (
	DefaultQueryTimeout = 30 * time.Second
	DefaultQueryMaxRows = 10_000
)

// untrustedMaxMemory bounds one untrusted query's memory on the server.
const untrustedMaxMemory = 1 << 30

// Query implements jobcast.TelemetryStore. Arguments bind to '?'
// placeholders; time.Time arguments become Decimal64(3) literals comparable
// with ts.
func (s *Store) Query(ctx context.Context, query string, args ...any) (*jobcast.Rows, error) {
	query, args = bindTimes(rewriteBools(inlineCTEs(query)), args)
	rows, err := s.conn.Query(ctx, query, args...)
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

// rewriteBools writes the literals true and false as 1 and 0, which
// ClickHouse before 21.12 needs (it has no Bool type; comparisons are UInt8).
func rewriteBools(query string) string {
	var b strings.Builder
	last := 0
	for _, t := range tokenize(query) {
		if t.word("true") || t.word("false") {
			b.WriteString(query[last:t.pos])
			if t.word("true") {
				b.WriteString("1")
			} else {
				b.WriteString("0")
			}
			last = t.end
		}
	}
	if last == 0 {
		return query
	}
	b.WriteString(query[last:])
	return b.String()
}

// bindTimes replaces the placeholders of time.Time arguments with literals.
func bindTimes(query string, args []any) (string, []any) {
	hasTime := false
	for _, a := range args {
		if _, ok := a.(time.Time); ok {
			hasTime = true
			break
		}
	}
	if !hasTime {
		return query, args
	}
	var b strings.Builder
	var rest []any
	last, n := 0, 0
	for _, t := range tokenize(query) {
		if !t.is("?") || n >= len(args) {
			continue
		}
		if tm, ok := args[n].(time.Time); ok {
			b.WriteString(query[last:t.pos])
			b.WriteString(tsLiteral(tm))
			last = t.end
		} else {
			rest = append(rest, args[n])
		}
		n++
	}
	b.WriteString(query[last:])
	return b.String(), append(rest, args[n:]...)
}

// Refusals of QueryUntrusted. They describe the rule broken, never the
// server's state.
var (
	errNotSelect = badRequest("only a single SELECT statement is allowed")
	errEmpty     = badRequest("the query is empty")
	errSettings  = badRequest("a SETTINGS clause is not allowed: the limits are the server's")
	errFormat    = badRequest("FORMAT and INTO OUTFILE are not allowed")
	errTables    = badRequest("only the events table may be queried")
	errTimeout   = badRequest("the query exceeded its time limit")
	errMemory    = badRequest("the query exceeded the memory limit")
	errParams    = badRequest("query parameters (?) are not supported")
)

func badRequest(msg string) *jobcast.Error { return jobcast.Errorf(protocol.ErrBadRequest, "%s", msg) }

// statements are first words of statements other than SELECT.
var statements = map[string]bool{
	"create": true, "drop": true, "alter": true, "truncate": true, "insert": true, "update": true,
	"delete": true, "attach": true, "detach": true, "rename": true, "optimize": true, "kill": true,
	"set": true, "use": true, "system": true, "grant": true, "revoke": true, "show": true,
	"describe": true, "desc": true, "exists": true, "check": true, "explain": true, "watch": true,
	"replace": true, "undrop": true, "backup": true, "restore": true, "move": true, "exchange": true,
}

// allowedTableFuncs read nothing but what they generate.
var allowedTableFuncs = map[string]bool{"numbers": true, "numbers_mt": true, "zeros": true, "zeros_mt": true}

// deniedFuncs read files, the network, other tables or dictionaries, or run
// programs; refused wherever they are called.
var deniedFuncs = map[string]bool{
	"file": true, "url": true, "remote": true, "remotesecure": true, "cluster": true,
	"clusterallreplicas": true, "mysql": true, "postgresql": true, "jdbc": true, "odbc": true,
	"hdfs": true, "hdfscluster": true, "s3": true, "s3cluster": true, "input": true, "merge": true,
	"executable": true, "sqlite": true, "mongodb": true, "redis": true, "azureblobstorage": true,
	"gcs": true, "deltalake": true, "hudi": true, "iceberg": true, "dictionary": true,
	"view": true, "viewifpermitted": true, "fuzzjson": true, "urlcluster": true, "filecluster": true,
	"loop": true, "mergetreeindex": true, "null": true,
}

// check refuses what the sandbox settings let through; see doc.go.
func (s *Store) check(toks []token) error {
	for len(toks) > 0 && toks[len(toks)-1].is(";") {
		toks = toks[:len(toks)-1]
	}
	if len(toks) == 0 {
		return errEmpty
	}
	first := toks[0]
	if first.kind == tokWord && statements[first.lower()] {
		return errNotSelect
	}
	for i, t := range toks {
		switch {
		case t.is(";"):
			return errNotSelect
		case t.is("?"):
			return errParams
		case t.word("settings"):
			return errSettings
		case t.word("format"), t.word("outfile"):
			if t.word("format") && i+1 < len(toks) && toks[i+1].is("(") {
				continue // the format() string function
			}
			return errFormat
		case t.kind == tokWord || t.kind == tokQuoted:
			name := t.lower()
			call := i+1 < len(toks) && toks[i+1].is("(")
			if call && (deniedFuncs[name] || strings.HasPrefix(name, "dictget") || strings.HasPrefix(name, "joinget") || name == "dicthas") {
				return badRequest(fmt.Sprintf("%s() is not allowed: it reads outside the events table", t.text))
			}
			if name == "system" && i+1 < len(toks) && toks[i+1].is(".") {
				return errTables
			}
			if t.word("from") || t.word("join") || t.word("in") {
				if err := s.checkTableRef(toks[i+1:], !t.word("in")); err != nil {
					return err
				}
			}
			if t.word("from") {
				if err := s.checkCommaJoins(toks[i+1:]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// fromEnds are the words that end a FROM clause's list of tables.
var fromEnds = map[string]bool{
	"where": true, "prewhere": true, "group": true, "order": true, "limit": true, "having": true,
	"union": true, "join": true, "array": true, "left": true, "right": true, "inner": true,
	"full": true, "cross": true, "any": true, "all": true, "global": true, "on": true, "using": true,
	"window": true, "qualify": true, "except": true, "intersect": true, "paste": true,
}

// checkCommaJoins checks the tables after the commas of FROM a, b, c.
func (s *Store) checkCommaJoins(toks []token) error {
	depth := 0
	for j, t := range toks {
		switch {
		case t.is("("):
			depth++
		case t.is(")"):
			if depth--; depth < 0 {
				return nil
			}
		case depth == 0 && t.kind == tokWord && fromEnds[t.lower()]:
			return nil
		case depth == 0 && t.is(","):
			if err := s.checkTableRef(toks[j+1:], true); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkTableRef checks the table reference at the start of toks: a
// subquery, an unqualified name (tables resolve in the store's database,
// which holds only events), <database>.events, or an allowed table function.
func (s *Store) checkTableRef(toks []token, tablePos bool) error {
	if len(toks) == 0 || toks[0].is("(") || (toks[0].kind != tokWord && toks[0].kind != tokQuoted) {
		return nil
	}
	if len(toks) > 1 && toks[1].is("(") {
		if tablePos && !allowedTableFuncs[toks[0].lower()] {
			return badRequest(fmt.Sprintf("table function %s() is not allowed: only numbers() and zeros()", toks[0].text))
		}
		return nil
	}
	if len(toks) > 2 && toks[1].is(".") {
		if toks[0].text != s.db || toks[2].text != "events" {
			return errTables
		}
	}
	return nil
}

// QueryUntrusted implements jobcast.TelemetryStore; doc.go describes the
// sandbox. A zero MaxRows or Timeout means DefaultQueryMaxRows or
// DefaultQueryTimeout. Errors in the query itself (syntax, an unknown
// column) are answered with ClickHouse's message, which is about the query.
func (s *Store) QueryUntrusted(ctx context.Context, query string, limits jobcast.QueryLimits) (*jobcast.Rows, error) {
	if limits.MaxRows <= 0 {
		limits.MaxRows = DefaultQueryMaxRows
	}
	if limits.Timeout <= 0 {
		limits.Timeout = DefaultQueryTimeout
	}
	toks := tokenize(query)
	if err := s.check(toks); err != nil {
		return nil, err
	}
	// Drop trailing semicolons: the native protocol takes one statement.
	for len(toks) > 0 && toks[len(toks)-1].is(";") {
		query = query[:toks[len(toks)-1].pos]
		toks = toks[:len(toks)-1]
	}
	secs := int(math.Ceil(limits.Timeout.Seconds()))
	qctx, cancel := context.WithTimeout(ctx, limits.Timeout)
	defer cancel()
	// Integer settings only: clients of servers as old as 18.16 can send
	// no others. Overflow modes keep their default, throw; the row limit
	// is applied here, by reading MaxRows+1 rows and cancelling the rest.
	qctx = ch.Context(qctx, ch.WithSettings(ch.Settings{
		"readonly":           2,
		"max_execution_time": secs,
		"max_memory_usage":   untrustedMaxMemory,
	}))
	rows, err := s.conn.Query(qctx, rewriteBools(inlineCTEs(query)))
	if err != nil {
		return nil, s.untrustedErr(ctx, qctx, err)
	}
	defer rows.Close()
	out, err := collect(rows, limits.MaxRows)
	if err != nil {
		return nil, s.untrustedErr(ctx, qctx, err)
	}
	return out, nil
}

// ClickHouse error codes that are about the query, not the server.
var queryErrorCodes = map[int32]bool{
	36: true, 42: true, 43: true, 44: true, 46: true, 47: true, 48: true, 49: true, 50: true,
	53: true, 60: true, 62: true, 69: true, 70: true, 81: true, 130: true, 179: true, 184: true,
	215: true, 352: true, 386: true,
}

// untrustedErr maps an untrusted query's error: the time limit and the
// memory limit and errors in the query are bad requests; the caller's own
// cancellation and server trouble are plain errors.
func (s *Store) untrustedErr(ctx, qctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("untrusted query: %w", ctx.Err())
	}
	// The driver puts the context's deadline on the socket, which can
	// time out a moment before the context's own timer fires.
	var ne net.Error
	if qctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout() && pastDeadline(qctx)) {
		return errTimeout
	}
	var ex *proto.Exception
	if errors.As(err, &ex) {
		switch {
		case ex.Code == 159: // TIMEOUT_EXCEEDED
			return errTimeout
		case ex.Code == 241: // MEMORY_LIMIT_EXCEEDED
			return errMemory
		case ex.Code == 164: // READONLY
			return errNotSelect
		case ex.Code == 62: // SYNTAX_ERROR
			return badRequest("syntax error: " + firstLine(ex.Message))
		case queryErrorCodes[ex.Code]:
			return badRequest(firstLine(ex.Message))
		}
	}
	return fmt.Errorf("untrusted query: %w", err)
}

// pastDeadline reports whether ctx's deadline has (all but) passed.
func pastDeadline(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && time.Until(dl) < 50*time.Millisecond
}

// firstLine drops the server's stack traces and notes after the first line.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// collect reads rows into a jobcast.Rows; with maxRows >= 0 it stops after
// maxRows rows and sets Truncated if there were more.
func collect(rows driver.Rows, maxRows int) (*jobcast.Rows, error) {
	types := rows.ColumnTypes()
	out := &jobcast.Rows{Columns: rows.Columns(), Rows: [][]any{}}
	dest := make([]any, len(types))
	for i, t := range types {
		dest[i] = reflect.New(t.ScanType()).Interface()
	}
	for rows.Next() {
		if maxRows >= 0 && len(out.Rows) == maxRows {
			out.Truncated = true
			break
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		row := make([]any, len(dest))
		for i, d := range dest {
			row[i] = normalize(reflect.ValueOf(d).Elem().Interface(), types[i].DatabaseTypeName())
		}
		out.Rows = append(out.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// normalize turns a driver value into one of Rows' types: int64, float64,
// string, bool, time.Time or nil. UInt8 is a bool (ClickHouse's comparisons
// and jobcast's retryable column), Decimal(18, 3) a time (the ts column).
func normalize(v any, dbType string) any {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		v = rv.Elem().Interface()
	}
	switch x := v.(type) {
	case nil:
		return nil
	case bool, string, int64, float64:
		return x
	case uint8:
		return x != 0
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint64:
		if x > math.MaxInt64 {
			return float64(x)
		}
		return int64(x)
	case float32:
		return float64(x)
	case time.Time:
		return x.UTC()
	case decimal.Decimal:
		if strings.TrimPrefix(strings.TrimSuffix(dbType, ")"), "Nullable(") == "Decimal(18, 3" {
			return time.UnixMilli(x.Shift(3).IntPart()).UTC()
		}
		f, _ := x.Float64()
		return f
	}
	return v
}
