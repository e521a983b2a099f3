package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/httpapi"
	"github.com/jobcast/jobcast/internal/httputil"
)

const queryUsage = `Usage:
  jobcast query sql [flags] "SELECT event, count(*) FROM events GROUP BY 1"
      read-only SQL on the events table (POST /v1/sql: one SELECT, 10 s, 10,000 rows)
  jobcast query metric NAME [flags] [-last 1h | -from T -to T] [-group-by DIM,...] [-bucket 5m] [-filter DIM=VALUE]...
      one metric over a window (GET /v1/metrics/NAME)
  jobcast query metrics [flags]
      the metrics, their units and formulas (GET /v1/metrics)

It talks to a running server with the admin token. Flags:
`

// queryTimeout bounds one request; the server's SQL limit is 10 s.
const queryTimeout = 30 * time.Second

// queryFlags are the flags every query subcommand takes.
type queryFlags struct {
	fs       *flag.FlagSet
	server   string
	token    string
	dataDir  string
	json     bool
	last     string
	from, to string
	groupBy  string
	bucket   string
	filters  filterFlag
}

// filterFlag collects repeated -filter DIM=VALUE flags.
type filterFlag []string

func (f *filterFlag) String() string { return strings.Join(*f, ",") }

func (f *filterFlag) Set(v string) error {
	if k, _, ok := strings.Cut(v, "="); !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("filter %q is not DIMENSION=VALUE (such as pipeline=csv_import)", v)
	}
	*f = append(*f, v)
	return nil
}

func newQueryFlags(name string, metric bool, stderr io.Writer) *queryFlags {
	f := &queryFlags{fs: flag.NewFlagSet("query "+name, flag.ContinueOnError)}
	f.fs.SetOutput(stderr)
	f.fs.Usage = func() {
		fmt.Fprint(stderr, queryUsage)
		f.fs.PrintDefaults()
	}
	f.fs.StringVar(&f.server, "server", "http://127.0.0.1:8080", "base URL of the jobcast server")
	f.fs.StringVar(&f.token, "admin-token", "", "admin token (default $JOBCAST_ADMIN_TOKEN, else the data dir's admin-token file)")
	f.fs.StringVar(&f.dataDir, "data-dir", "", "data dir whose admin-token file to read (default $JOBCAST_DATA_DIR, else ./jobcast-data)")
	f.fs.BoolVar(&f.json, "json", false, "print the server's JSON answer instead of a table")
	if metric {
		f.fs.StringVar(&f.last, "last", "", "window up to now: 1h, 24h, 7d, 30d, 15m, … (default 1h)")
		f.fs.StringVar(&f.from, "from", "", "window start, RFC 3339 (instead of -last)")
		f.fs.StringVar(&f.to, "to", "", "window end (exclusive), RFC 3339 (default now)")
		f.fs.StringVar(&f.groupBy, "group-by", "", "dimensions to group by, comma-separated: pipeline, app_version, os_version, network_type, device_model")
		f.fs.StringVar(&f.bucket, "bucket", "", "time buckets of this width (5m, 1h, 1d) for a trend")
		f.fs.Var(&f.filters, "filter", "keep only DIMENSION=VALUE (repeatable), such as pipeline=csv_import")
	}
	return f
}

// parse parses flags and positional arguments in any order ("metric NAME
// -last 1h" and "metric -last 1h NAME"); everything after "--" is
// positional.
func (f *queryFlags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.fs.Parse(args); err != nil {
			return nil, err
		}
		rest := f.fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// client returns the HTTP client for the server the flags name.
func (f *queryFlags) client(env envLookup) (*queryClient, error) {
	base := strings.TrimRight(strings.TrimSpace(f.server), "/")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-server %q is not an http:// or https:// URL", f.server)
	}
	tok, err := f.adminToken(env)
	if err != nil {
		return nil, err
	}
	return &queryClient{base: base, token: tok, hc: &http.Client{Timeout: queryTimeout}}, nil
}

// adminToken is -admin-token, else $JOBCAST_ADMIN_TOKEN, else the data
// dir's admin-token file.
func (f *queryFlags) adminToken(env envLookup) (string, error) {
	if t := strings.TrimSpace(f.token); t != "" {
		return t, nil
	}
	if t, ok := env("JOBCAST_ADMIN_TOKEN"); ok && strings.TrimSpace(t) != "" {
		return strings.TrimSpace(t), nil
	}
	dir := f.dataDir
	if dir == "" {
		dir = "./jobcast-data"
		if v, ok := env("JOBCAST_DATA_DIR"); ok && strings.TrimSpace(v) != "" {
			dir = v
		}
	}
	path := filepath.Join(dir, auth.AdminTokenFile)
	data, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(data)) != "" {
		return strings.TrimSpace(string(data)), nil
	}
	return "", fmt.Errorf("no admin token: pass -admin-token, set JOBCAST_ADMIN_TOKEN, or point -data-dir at the server's data dir (%s: %s)",
		path, readProblem(err))
}

func readProblem(err error) string {
	switch {
	case err == nil:
		return "empty"
	case errors.Is(err, os.ErrNotExist):
		return "no such file"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	return err.Error()
}

// queryClient calls a jobcast server's admin API.
type queryClient struct {
	base, token string
	hc          *http.Client
}

// do sends a request and returns the answer's body; an error answer
// becomes an error that says what to do about it.
func (c *queryClient) do(ctx context.Context, method, path string, body io.Reader, contentType string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("cannot reach the jobcast server at %s: %v (is `jobcast serve` running there? -server sets the address)", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("read the answer of %s: %w", c.base, err)
	}
	if resp.StatusCode == http.StatusOK {
		return data, nil
	}
	var eb httputil.ErrorBody
	if json.Unmarshal(data, &eb) != nil || eb.Error.Message == "" {
		snippet := strings.TrimSpace(string(data))
		if len(snippet) > 200 {
			snippet = snippet[:200] + "…"
		}
		return nil, fmt.Errorf("%s answered %s (is it a jobcast server?): %s", c.base, resp.Status, snippet)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, fmt.Errorf("the server refused the admin token (%s): pass the server's token with -admin-token, JOBCAST_ADMIN_TOKEN or -data-dir", eb.Error.Message)
	}
	return nil, fmt.Errorf("%s (%d %s)", eb.Error.Message, resp.StatusCode, eb.Error.Code)
}

// adminGroup is a command group that talks to a running server's admin API
// with the query flags (experiments, users): its help, its subcommands and
// how many arguments each takes.
type adminGroup struct {
	name  string         // "experiments"
	usage string         // printed by -h
	args  map[string]int // subcommand → positional arguments
	list  string         // the subcommands, for messages: "list, create or stop"
}

// parse reads `jobcast <group> SUB [flags] ARGS…`; extra adds a
// subcommand's own flags. It checks that the subcommand exists, and
// returns its flags and positional arguments for the caller to count with
// want (an option may change how many a subcommand takes).
func (g adminGroup) parse(args []string, stderr io.Writer, extra func(sub string, fs *flag.FlagSet)) (sub string, f *queryFlags, pos []string, err error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, g.usage)
		newQueryFlags("", false, stderr).fs.PrintDefaults()
		if len(args) == 0 {
			return "", nil, nil, fmt.Errorf("%s: name a subcommand: %s", g.name, g.list)
		}
		return "", nil, nil, flag.ErrHelp
	}
	sub = args[0]
	f = newQueryFlags(sub, false, stderr)
	f.fs.Init(g.name+" "+sub, flag.ContinueOnError)
	f.fs.Usage = func() {
		fmt.Fprint(stderr, g.usage)
		f.fs.PrintDefaults()
	}
	if extra != nil {
		extra(sub, f.fs)
	}
	if pos, err = f.parse(args[1:]); err != nil {
		return "", nil, nil, err
	}
	if _, ok := g.args[sub]; !ok {
		return "", nil, nil, fmt.Errorf("%s: unknown subcommand %q: use %s", g.name, sub, g.list)
	}
	return sub, f, pos, nil
}

// want checks that sub got n positional arguments.
func (g adminGroup) want(sub string, pos []string, n int) error {
	if len(pos) != n {
		return fmt.Errorf("%s %s takes %d argument(s), got %d (jobcast %s -h)", g.name, sub, n, len(pos), g.name)
	}
	return nil
}

func runQuery(ctx context.Context, args []string, env envLookup, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, queryUsage)
		newQueryFlags("", true, stderr).fs.PrintDefaults()
		if len(args) == 0 {
			return errors.New("query: name a subcommand: sql, metric or metrics")
		}
		return flag.ErrHelp
	}
	sub := args[0]
	f := newQueryFlags(sub, sub == "metric", stderr)
	switch sub {
	case "sql", "metric", "metrics":
	default:
		return fmt.Errorf("query: unknown subcommand %q: use sql, metric or metrics (jobcast query -h)", sub)
	}
	pos, err := f.parse(args[1:])
	if err != nil {
		return err
	}
	c, err := f.client(env)
	if err != nil {
		return err
	}
	switch sub {
	case "sql":
		if len(pos) == 0 {
			return errors.New(`query sql: give the SQL, such as jobcast query sql "SELECT event, count(*) FROM events GROUP BY 1"`)
		}
		return querySQL(ctx, c, strings.Join(pos, " "), f.json, stdout)
	case "metric":
		if len(pos) != 1 {
			return errors.New("query metric: give one metric name, such as connection_success_rate (jobcast query metrics lists them)")
		}
		return queryMetric(ctx, c, pos[0], f, stdout)
	default:
		if len(pos) > 0 {
			return fmt.Errorf("query metrics takes no arguments, got %q", pos)
		}
		return queryMetrics(ctx, c, f.json, stdout)
	}
}

func querySQL(ctx context.Context, c *queryClient, sql string, asJSON bool, stdout io.Writer) error {
	body, err := json.Marshal(map[string]string{"query": sql})
	if err != nil {
		return err
	}
	data, err := c.do(ctx, http.MethodPost, "/v1/sql", bytes.NewReader(body), "application/json")
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, data)
	}
	var resp httpapi.SQLResponse
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&resp); err != nil {
		return fmt.Errorf("the server's answer is not a SQL result: %w", err)
	}
	rows := make([][]string, len(resp.Data))
	for i, obj := range resp.Data {
		rows[i] = make([]string, len(resp.Columns))
		for j, col := range resp.Columns {
			rows[i][j] = cell(obj[col])
		}
	}
	if err := printTable(stdout, resp.Columns, rows); err != nil {
		return err
	}
	note := fmt.Sprintf("(%d rows)", resp.Rows)
	if resp.Rows == 1 {
		note = "(1 row)"
	}
	if resp.Truncated {
		note = fmt.Sprintf("(%d rows: truncated at the server's row limit; add a LIMIT or aggregate)", resp.Rows)
	}
	_, err = fmt.Fprintln(stdout, note)
	return err
}

func queryMetric(ctx context.Context, c *queryClient, name string, f *queryFlags, stdout io.Writer) error {
	q := url.Values{}
	for k, v := range map[string]string{"last": f.last, "from": f.from, "to": f.to, "groupBy": f.groupBy, "bucket": f.bucket} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for _, kv := range f.filters {
		k, v, _ := strings.Cut(kv, "=")
		q.Add(strings.TrimSpace(k), v)
	}
	path := "/v1/metrics/" + url.PathEscape(name)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	data, err := c.do(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(stdout, data)
	}
	var resp httpapi.MetricResponse
	if err := json.Unmarshal(data, &resp); err != nil {
		return fmt.Errorf("the server's answer is not a metric: %w", err)
	}
	fmt.Fprintf(stdout, "%s (%s), %s to %s\n", resp.Metric, resp.Unit, stamp(resp.From), stamp(resp.To))
	if len(resp.Points) == 0 {
		_, err := fmt.Fprintln(stdout, "(no points: no events for this metric in the window)")
		return err
	}
	var cols []string
	if resp.Bucket != "" {
		cols = append(cols, "time")
	}
	cols = append(cols, resp.GroupBy...)
	cols = append(cols, "value", "weight")
	rows := make([][]string, len(resp.Points))
	for i, p := range resp.Points {
		var row []string
		if resp.Bucket != "" {
			row = append(row, stamp(p.Time))
		}
		for _, g := range resp.GroupBy {
			row = append(row, cell(p.Group[g]))
		}
		rows[i] = append(row, number(p.Value), number(p.Weight))
	}
	return printTable(stdout, cols, rows)
}

func queryMetrics(ctx context.Context, c *queryClient, asJSON bool, stdout io.Writer) error {
	data, err := c.do(ctx, http.MethodGet, "/v1/metrics", nil, "")
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, data)
	}
	var resp httpapi.MetricDefinitions
	if err := json.Unmarshal(data, &resp); err != nil {
		return fmt.Errorf("the server's answer is not a list of metrics: %w", err)
	}
	for _, m := range resp.Metrics {
		fmt.Fprintf(stdout, "%s (%s)\n    %s\n    = %s\n", m.Name, m.Unit, m.Description, m.Formula)
	}
	_, err = fmt.Fprintf(stdout, "\nfilter and group by: %s\n", strings.Join(resp.Dimensions, ", "))
	return err
}

// printTable writes an aligned table with a header row.
func printTable(w io.Writer, cols []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// cell writes one value of a JSON answer for a table: NULL for null,
// strings without quotes (tabs and line breaks as spaces), numbers as sent.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		if x == "" {
			return `""`
		}
		return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(x)
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// number writes a metric value: whole numbers without a fraction, others
// to six decimals.
func number(v float64) string {
	return strconv.FormatFloat(math.Round(v*1e6)/1e6, 'f', -1, 64)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func printJSON(w io.Writer, data []byte) error {
	var out bytes.Buffer
	if err := json.Indent(&out, bytes.TrimSpace(data), "", "  "); err != nil {
		return fmt.Errorf("the server's answer is not JSON: %w", err)
	}
	out.WriteByte('\n')
	_, err := w.Write(out.Bytes())
	return err
}
