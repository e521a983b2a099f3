package gql

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/hub"
	"github.com/jobcast/jobcast/internal/metricq"
	"github.com/jobcast/jobcast/metrics"
	"github.com/jobcast/jobcast/protocol"
)

// LiveSource gives this node's live figures for the live query. *hub.Hub is
// one: its ConnCount and Totals are what the query reports.
type LiveSource interface {
	// ConnCount is the number of open WebSocket connections.
	ConnCount() int64
	// Totals are the frames and bytes sent and progress frames throttled
	// since the node started.
	Totals() hub.Totals
}

// Time is the schema's Time scalar: an RFC 3339 instant, read with a clear
// error message and written in UTC.
type Time struct{ time.Time }

// ImplementsGraphQLType maps Time to the schema's Time scalar.
func (Time) ImplementsGraphQLType(name string) bool { return name == "Time" }

// UnmarshalGraphQL reads an RFC 3339 string.
func (t *Time) UnmarshalGraphQL(input any) error {
	s, ok := input.(string)
	if !ok {
		return fmt.Errorf("a Time is an RFC 3339 string such as \"2026-01-05T10:00:00Z\", not %T", input)
	}
	v, err := metricq.ParseTime("time", s)
	if err != nil {
		return errors.New(jobcast.ErrorMessage(err))
	}
	t.Time = v
	return nil
}

// MarshalJSON writes RFC 3339 in UTC, with the fraction only when there is
// one.
func (t Time) MarshalJSON() ([]byte, error) {
	return json.Marshal(t.UTC().Format(time.RFC3339Nano))
}

// queryError is a GraphQL error meant for the caller: its message is shown
// as it is and its jobcast error code goes in extensions.code.
type queryError struct {
	code, msg string
}

func (e *queryError) Error() string { return e.msg }

// Extensions implements graphql-go's extension interface for errors.
func (e *queryError) Extensions() map[string]any { return map[string]any{"code": e.code} }

func badInput(format string, args ...any) error {
	return &queryError{code: protocol.ErrBadRequest, msg: fmt.Sprintf(format, args...)}
}

// resolver is the root of the schema: one method per Query field.
type resolver struct {
	lib   *metrics.Library
	live  LiveSource
	clock jobcast.Clock
	log   *slog.Logger
	// experiments answers experiments and experimentResults (nil: not available).
	experiments Experiments
}

// fail turns an error of the metrics library into the caller's error: a
// *jobcast.Error keeps its message and code; anything else is logged and
// answered as "internal error".
func (r *resolver) fail(ctx context.Context, what string, err error) error {
	var je *jobcast.Error
	if errors.As(err, &je) && je.Code != protocol.ErrInternal {
		return &queryError{code: je.Code, msg: je.Message}
	}
	if ctx.Err() != nil {
		return &queryError{code: protocol.ErrUnavailable, msg: "request canceled"}
	}
	r.log.Error("graphql query failed", "query", what, "err", err)
	return &queryError{code: protocol.ErrInternal, msg: "internal error"}
}

// windowInput is the Window input.
type windowInput struct {
	Last     *string
	From, To *Time
}

// filterInput is the Filter input.
type filterInput struct {
	Pipeline, AppVersion, OSVersion, NetworkType, DeviceModel *string
}

// scopeArgs are the arguments every metric query takes.
type scopeArgs struct {
	Window  *windowInput
	Filter  *filterInput
	GroupBy *[]string
}

// query turns the arguments into a metrics.Query without a metric.
func (r *resolver) query(a scopeArgs) (metrics.Query, error) {
	var (
		last     string
		from, to time.Time
	)
	if w := a.Window; w != nil {
		if w.Last != nil {
			if last = *w.Last; last == "" {
				return metrics.Query{}, badInput("last is empty: give a duration such as 1h, 24h, 7d or 30d")
			}
		}
		if w.From != nil {
			from = w.From.Time
		}
		if w.To != nil {
			to = w.To.Time
		}
	}
	from, to, err := metricq.Window(last, from, to, r.clock.Now())
	if err != nil {
		return metrics.Query{}, badInput("%s", jobcast.ErrorMessage(err))
	}
	q := metrics.Query{From: from, To: to}
	if f := a.Filter; f != nil {
		q.Filters = map[string]string{}
		for dim, v := range map[string]*string{
			"pipeline": f.Pipeline, "app_version": f.AppVersion, "os_version": f.OSVersion,
			"network_type": f.NetworkType, "device_model": f.DeviceModel,
		} {
			if v != nil {
				q.Filters[dim] = *v
			}
		}
	}
	if a.GroupBy != nil {
		for _, g := range *a.GroupBy {
			q.GroupBy = append(q.GroupBy, fromEnum(g))
		}
	}
	return q, nil
}

// definition is a MetricDefinition.
type definition struct {
	Name, Key, Unit, Description, Formula string
}

// Metrics resolves Query.metrics.
func (r *resolver) Metrics() []*definition {
	defs := metrics.Definitions()
	out := make([]*definition, len(defs))
	for i, d := range defs {
		out[i] = &definition{Name: enumValue(d.Name), Key: d.Name, Unit: d.Unit, Description: d.Description, Formula: d.Formula}
	}
	return out
}

// group is a Group: the grouped dimensions' values, nil for the others.
type group struct {
	Pipeline, AppVersion, OSVersion, NetworkType, DeviceModel *string
}

func newGroup(g map[string]string, by []string) *group {
	if len(by) == 0 {
		return nil
	}
	out := &group{}
	for _, d := range by {
		v := g[d]
		switch d {
		case "pipeline":
			out.Pipeline = &v
		case "app_version":
			out.AppVersion = &v
		case "os_version":
			out.OSVersion = &v
		case "network_type":
			out.NetworkType = &v
		case "device_model":
			out.DeviceModel = &v
		}
	}
	return out
}

// series is a MetricSeries.
type series struct {
	Name, Key, Unit string
	From, To        Time
	Bucket          *string
	GroupBy         []string
	Points          []*point
}

// point is a Point.
type point struct {
	Time          Time
	Group         *group
	Value, Weight float64
}

type metricArgs struct {
	Name    string
	Window  *windowInput
	Filter  *filterInput
	GroupBy *[]string
	Bucket  *string
}

// Metric resolves Query.metric.
func (r *resolver) Metric(ctx context.Context, a metricArgs) (*series, error) {
	q, err := r.query(scopeArgs{a.Window, a.Filter, a.GroupBy})
	if err != nil {
		return nil, err
	}
	q.Metric = fromEnum(a.Name)
	if a.Bucket != nil {
		if q.Bucket, err = metricq.ParseDuration("bucket", *a.Bucket); err != nil {
			return nil, r.fail(ctx, q.Metric, err)
		}
	}
	res, err := r.lib.Compute(ctx, q)
	if err != nil {
		return nil, r.fail(ctx, q.Metric, err)
	}
	s := &series{
		Name: enumValue(res.Metric), Key: res.Metric, Unit: res.Unit,
		From: Time{q.From}, To: Time{q.To}, Bucket: a.Bucket,
		GroupBy: make([]string, len(q.GroupBy)), Points: make([]*point, len(res.Points)),
	}
	for i, g := range q.GroupBy {
		s.GroupBy[i] = enumValue(g)
	}
	for i, p := range res.Points {
		s.Points[i] = &point{Time: Time{p.Time}, Group: newGroup(p.Group, q.GroupBy), Value: p.Value, Weight: p.Weight}
	}
	return s, nil
}

// byGroup computes several metrics over q and joins their points by group:
// for each group seen in any of them (ordered by its values), the point of
// each metric, nil where a metric has none.
func (r *resolver) byGroup(ctx context.Context, q metrics.Query, names ...string) ([]map[string]string, [][]*metrics.Point, error) {
	var (
		groups []map[string]string
		rows   [][]*metrics.Point
		index  = map[string]int{}
	)
	for i, name := range names {
		q.Metric = name
		res, err := r.lib.Compute(ctx, q)
		if err != nil {
			return nil, nil, r.fail(ctx, name, err)
		}
		for j := range res.Points {
			p := &res.Points[j]
			k := key(p.Group, q.GroupBy)
			n, ok := index[k]
			if !ok {
				n = len(groups)
				index[k] = n
				groups = append(groups, p.Group)
				rows = append(rows, make([]*metrics.Point, len(names)))
			}
			rows[n][i] = p
		}
	}
	order := make([]int, len(groups))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		for _, d := range q.GroupBy {
			if c := cmp.Compare(groups[a][d], groups[b][d]); c != 0 {
				return c
			}
		}
		return 0
	})
	sg, sr := make([]map[string]string, len(order)), make([][]*metrics.Point, len(order))
	for i, o := range order {
		sg[i], sr[i] = groups[o], rows[o]
	}
	return sg, sr, nil
}

// key encodes a group's values in GroupBy order.
func key(g map[string]string, by []string) string {
	var sb strings.Builder
	for _, d := range by {
		sb.WriteString(g[d])
		sb.WriteByte(0)
	}
	return sb.String()
}

func value(p *metrics.Point) float64 {
	if p == nil {
		return 0
	}
	return p.Value
}

func optional(p *metrics.Point) *float64 {
	if p == nil {
		return nil
	}
	v := p.Value
	return &v
}

// connectionHealth is a ConnectionHealth.
type connectionHealth struct {
	Group                                            *group
	Connections, ConnectFailures                     float64
	SuccessRate, AvgDurationMs, ReconnectsPerSession *float64
}

// ConnectionHealth resolves Query.connectionHealth.
func (r *resolver) ConnectionHealth(ctx context.Context, a scopeArgs) ([]*connectionHealth, error) {
	q, err := r.query(a)
	if err != nil {
		return nil, err
	}
	groups, rows, err := r.byGroup(ctx, q, metrics.Connections, metrics.ConnectFailures,
		metrics.ConnectionSuccessRate, metrics.AvgConnectionDurationMs, metrics.ReconnectsPerSession)
	if err != nil {
		return nil, err
	}
	out := make([]*connectionHealth, len(groups))
	for i, p := range rows {
		out[i] = &connectionHealth{
			Group:       newGroup(groups[i], q.GroupBy),
			Connections: value(p[0]), ConnectFailures: value(p[1]),
			SuccessRate: optional(p[2]), AvgDurationMs: optional(p[3]), ReconnectsPerSession: optional(p[4]),
		}
	}
	return out, nil
}

// heartbeatRtt is a HeartbeatRtt.
type heartbeatRtt struct {
	Group                       *group
	Avg, P50, P95, P99, Samples float64
}

// HeartbeatRtt resolves Query.heartbeatRtt.
func (r *resolver) HeartbeatRtt(ctx context.Context, a scopeArgs) ([]*heartbeatRtt, error) {
	q, err := r.query(a)
	if err != nil {
		return nil, err
	}
	groups, rows, err := r.byGroup(ctx, q, metrics.RTTAvgMs, metrics.RTTP50Ms, metrics.RTTP95Ms, metrics.RTTP99Ms)
	if err != nil {
		return nil, err
	}
	out := make([]*heartbeatRtt, 0, len(groups))
	for i, p := range rows {
		if p[0] == nil {
			continue // no heartbeats in this group
		}
		out = append(out, &heartbeatRtt{
			Group: newGroup(groups[i], q.GroupBy),
			Avg:   p[0].Value, P50: value(p[1]), P95: value(p[2]), P99: value(p[3]),
			Samples: p[0].Weight,
		})
	}
	return out, nil
}

// errorCount is an ErrorCount.
type errorCount struct {
	Code, Provider  string
	Retryable       bool
	Count, Sessions float64
}

type errorsArgs struct {
	Window *windowInput
	Filter *filterInput
	Limit  int32 // 10 by the schema's default
}

// Errors resolves Query.errors.
func (r *resolver) Errors(ctx context.Context, a errorsArgs) ([]*errorCount, error) {
	q, err := r.query(scopeArgs{Window: a.Window, Filter: a.Filter})
	if err != nil {
		return nil, err
	}
	if a.Limit < 1 || a.Limit > 1000 {
		return nil, badInput("limit %d is out of range: 1 to 1000", a.Limit)
	}
	top, err := r.lib.TopErrors(ctx, q, int(a.Limit))
	if err != nil {
		return nil, r.fail(ctx, "errors", err)
	}
	out := make([]*errorCount, len(top))
	for i, e := range top {
		out[i] = &errorCount{Code: e.Code, Provider: e.Provider, Retryable: e.Retryable, Count: float64(e.Count), Sessions: float64(e.Sessions)}
	}
	return out, nil
}

// live is a Live.
type live struct {
	Connections, FramesSent, BytesSent, Throttled float64
}

// Live resolves Query.live.
func (r *resolver) Live() (*live, error) {
	if r.live == nil {
		return nil, &queryError{code: protocol.ErrUnavailable, msg: "live figures are not available on this server"}
	}
	t := r.live.Totals()
	return &live{
		Connections: float64(r.live.ConnCount()), FramesSent: float64(t.FramesSent),
		BytesSent: float64(t.BytesSent), Throttled: float64(t.ProgressThrottled),
	}, nil
}
