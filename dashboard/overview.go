package dashboard

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/httputil"
	"github.com/jobcast/jobcast/internal/metricq"
	"github.com/jobcast/jobcast/metrics"
	"github.com/jobcast/jobcast/protocol"
)

// Range is a time range the page offers: the span up to now and the
// bucket width of its trend charts.
type Range struct {
	Name   string
	Span   time.Duration
	Bucket time.Duration
}

// Ranges are the time ranges the page offers (60 to 96 trend points each):
// SPEC §5's 1h, 24h, 7d and 30d, and 15m for watching a deploy or a demo.
var Ranges = []Range{
	{"15m", 15 * time.Minute, 15 * time.Second},
	{"1h", time.Hour, time.Minute},
	{"24h", 24 * time.Hour, 15 * time.Minute},
	{"7d", 7 * 24 * time.Hour, 2 * time.Hour},
	// Whole UTC days, so that every full bucket of a 30-day trend is
	// answered from the store's daily rollups (12 h buckets read 10 M raw
	// events: seconds instead of milliseconds per metric).
	{"30d", 30 * 24 * time.Hour, 24 * time.Hour},
}

// DefaultRange is the range of a query that names none.
const DefaultRange = "1h"

// FilterDims are the dimensions the page filters by, in the order of its
// controls. (The endpoint also takes deviceModel.)
var FilterDims = []string{"pipeline", "network_type", "app_version", "os_version"}

// SegmentDims are the dimensions of the client segmentation panel.
var SegmentDims = []string{"os_version", "app_version", "device_model", "network_type"}

// Problem segments: a segment with at least minSegmentSessions sessions is
// a problem when its error rate is at least problemErrorLift above its
// dimension's baseline (all its segments together) and half as high again,
// or its success rate is at least problemSuccessDrop below the baseline.
const (
	minSegmentSessions = 5
	problemErrorLift   = 0.05
	problemSuccessDrop = 0.05
)

// topErrorsLimit is how many error codes the errors panel lists.
const topErrorsLimit = 10

// maxParallel bounds the metric statements one overview runs at once:
// DuckDB already spreads each statement over the cores, so more at once
// only contend (over 10 million events, 30d: 33 s one at a time, 42 s four
// at a time, on a busy 2-core machine).
const maxParallel = 2

// Request is what an overview is asked for: a range and equality filters.
type Request struct {
	Range   string
	Filters map[string]string // dimension (snake_case) → value
}

// Value is a figure that may be missing: a ratio with nothing to divide by
// is null in JSON and "—" on the page, never 0.
type Value = *float64

// TrendPoint is one bucket of a trend: its start (ms since the epoch) and
// value.
type TrendPoint struct {
	T int64   `json:"t"`
	V float64 `json:"v"`
}

// Trend is a metric as a time series over the range.
type Trend struct {
	Metric string       `json:"metric"`
	Unit   string       `json:"unit"`
	Points []TrendPoint `json:"points"`
}

// HealthRow is connection health overall or for one network type.
type HealthRow struct {
	Group                string  `json:"group,omitempty"`
	Connections          float64 `json:"connections"`
	ConnectFailures      float64 `json:"connectFailures"`
	SuccessRate          Value   `json:"successRate"`
	AvgDurationMs        Value   `json:"avgDurationMs"`
	ReconnectsPerSession Value   `json:"reconnectsPerSession"`
}

// Health is the connection health panel.
type Health struct {
	Overall          HealthRow   `json:"overall"`
	ByNetworkType    []HealthRow `json:"byNetworkType"`
	LiveConnections  int64       `json:"liveConnections"`
	ConnectionsTrend Trend       `json:"connectionsTrend"`
	SuccessTrend     Trend       `json:"successRateTrend"`
}

// ErrorRow is one of the top errors.
type ErrorRow struct {
	Code      string `json:"code"`
	Provider  string `json:"provider"`
	Retryable bool   `json:"retryable"`
	Count     int64  `json:"count"`
	Sessions  int64  `json:"sessions"`
}

// Errors is the errors panel.
type Errors struct {
	Top       []ErrorRow `json:"top"`
	ErrorRate Value      `json:"errorRate"`
	Sessions  float64    `json:"sessions"`
	Trend     Trend      `json:"errorRateTrend"`
}

// RTTRow is the heartbeat round trip overall or for one pipeline.
type RTTRow struct {
	Group   string  `json:"group,omitempty"`
	Avg     Value   `json:"avg"`
	P50     Value   `json:"p50"`
	P95     Value   `json:"p95"`
	P99     Value   `json:"p99"`
	Samples float64 `json:"samples"`
}

// Latency is the latency panel.
type Latency struct {
	Overall    RTTRow   `json:"overall"`
	ByPipeline []RTTRow `json:"byPipeline"`
	Trends     []Trend  `json:"trends"` // avg, p95, p99
}

// SegmentRow is one value of a client dimension.
type SegmentRow struct {
	Value       string  `json:"value"`
	Sessions    float64 `json:"sessions"`
	Connections float64 `json:"connections"`
	ErrorRate   Value   `json:"errorRate"`
	SuccessRate Value   `json:"successRate"`
	Problem     bool    `json:"problem"`
	Why         string  `json:"why,omitempty"`
}

// Segment is the segmentation by one dimension.
type Segment struct {
	Dimension string       `json:"dimension"`
	Rows      []SegmentRow `json:"rows"`
}

// PipelineRow is the jobs of one pipeline.
type PipelineRow struct {
	Pipeline  string  `json:"pipeline"`
	Started   float64 `json:"started"`
	Completed float64 `json:"completed"`
	Failed    float64 `json:"failed"`
	// Running is the jobs started in the range that have not finished in
	// it: started − completed − failed, at least 0.
	Running        float64 `json:"running"`
	CompletionRate Value   `json:"completionRate"`
}

// Throughput is the throughput panel.
type Throughput struct {
	MessageRate     Value         `json:"messageRate"`
	MessagesSent    float64       `json:"messagesSent"`
	BytesPerMessage Value         `json:"bytesPerMessage"`
	ThrottleRate    Value         `json:"throttleRate"`
	Pipelines       []PipelineRow `json:"pipelines"`
	Trend           Trend         `json:"messageRateTrend"`
}

// MetricInfo is a metric's unit and formula, for the page's tooltips.
type MetricInfo struct {
	Unit        string `json:"unit"`
	Description string `json:"description"`
	Formula     string `json:"formula"`
}

// Overview is the answer of GET /dashboard/api/overview: every figure of
// the page for one range and filters.
type Overview struct {
	Range string    `json:"range"`
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	// BucketMs is the trend charts' bucket width.
	BucketMs int64 `json:"bucketMs"`
	// Filters are the filters applied, by their query parameter names.
	Filters    map[string]string `json:"filters"`
	Health     Health            `json:"health"`
	Errors     Errors            `json:"errors"`
	Latency    Latency           `json:"latency"`
	Segments   []Segment         `json:"segments"`
	Throughput Throughput        `json:"throughput"`
	// Options are the values each filter can take: those seen in the
	// range without the filters, so a filter never hides its siblings.
	Options     map[string][]string   `json:"options"`
	Definitions map[string]MetricInfo `json:"definitions"`
	// LiveJobs are some jobs with open connections on this node, for the
	// job inspector; StreamIntervalMs is how often the stream sends.
	LiveJobs         []string `json:"liveJobs"`
	StreamIntervalMs int64    `json:"streamIntervalMs"`
	// LiveJobCount and Nodes are as in LiveUpdate.
	LiveJobCount int64                `json:"liveJobCount"`
	Nodes        []jobcast.NodeStatus `json:"nodes"`
	// Alerts and Experiments are the state now, whatever the range and
	// filters: an alert fires now, an experiment runs since its start.
	Alerts      *AlertsPanel      `json:"alerts"`
	Experiments *ExperimentsPanel `json:"experiments"`
}

// maxLiveJobs bounds Overview.LiveJobs.
const maxLiveJobs = 8

// ParseRequest reads range and filters from a query string: range=24h,
// and pipeline, networkType, appVersion, osVersion, deviceModel (snake_case
// names work too). An empty filter value means no filter.
func ParseRequest(q url.Values) (Request, error) {
	req := Request{Range: q.Get("range"), Filters: map[string]string{}}
	if req.Range == "" {
		req.Range = DefaultRange
	}
	if _, ok := rangeOf(req.Range); !ok {
		return Request{}, jobcast.Errorf(protocol.ErrBadRequest, "range %q is not one of 15m, 1h, 24h, 7d, 30d", req.Range)
	}
	for k, vs := range q {
		if k == "range" || len(vs) == 0 || vs[0] == "" {
			continue
		}
		d, err := metricq.Dimension(k)
		if err != nil {
			return Request{}, err
		}
		req.Filters[d] = vs[0]
	}
	return req, nil
}

func rangeOf(name string) (int, bool) {
	i := slices.IndexFunc(Ranges, func(r Range) bool { return r.Name == name })
	return i, i >= 0
}

// Window returns the range's window ending at now, as the GraphQL window
// {last: range} does, and the bucket of its trends.
func Window(rangeName string, now time.Time) (from, to time.Time, bucket time.Duration, err error) {
	i, ok := rangeOf(rangeName)
	if !ok {
		return time.Time{}, time.Time{}, 0, jobcast.Errorf(protocol.ErrBadRequest, "range %q is not one of 15m, 1h, 24h, 7d, 30d", rangeName)
	}
	from, to, err = metricq.Window(rangeName, time.Time{}, time.Time{}, now)
	return from, to, Ranges[i].Bucket, err
}

// computer runs the metric statements of one overview, a few at a time,
// and keeps the first error. Equal queries asked for by several panels
// (connections by network type, the filter choices without filters, …) run
// once.
type computer struct {
	ctx     context.Context
	lib     *metrics.Library
	base    metrics.Query
	sem     chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	err     error
	queries map[string]*pending
	order   []string
}

// pending is a query and the panels waiting for its result.
type pending struct {
	q   metrics.Query
	fns []func(*metrics.Result)
}

// compute asks for metric name over the overview's window and filters,
// grouped by groupBy and bucketed when bucket; fn gets the result.
func (c *computer) compute(name string, groupBy []string, bucket bool, fn func(*metrics.Result)) {
	q := c.base
	q.Metric, q.GroupBy = name, groupBy
	if !bucket {
		q.Bucket = 0
	}
	c.ask(q, fn)
}

// ask queues q; fn gets its result (under c.mu) once wait runs it.
func (c *computer) ask(q metrics.Query, fn func(*metrics.Result)) {
	keys := make([]string, 0, len(q.Filters))
	for k, v := range q.Filters {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	key := strings.Join([]string{q.Metric, strings.Join(q.GroupBy, ","), q.Bucket.String(), strings.Join(keys, "\x00")}, "\x01")
	if p, ok := c.queries[key]; ok {
		p.fns = append(p.fns, fn)
		return
	}
	if c.queries == nil {
		c.queries = map[string]*pending{}
	}
	c.queries[key] = &pending{q: q, fns: []func(*metrics.Result){fn}}
	c.order = append(c.order, key)
}

func (c *computer) run(f func() error) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case c.sem <- struct{}{}:
		case <-c.ctx.Done():
			c.setErr(c.ctx.Err())
			return
		}
		defer func() { <-c.sem }()
		if err := f(); err != nil {
			c.setErr(err)
		}
	}()
}

func (c *computer) setErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

// wait runs the queued queries and waits for them and every run.
func (c *computer) wait() error {
	for _, k := range c.order {
		p := c.queries[k]
		c.run(func() error {
			res, err := c.lib.Compute(c.ctx, p.q)
			if err != nil {
				return err
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, fn := range p.fns {
				fn(res)
			}
			return nil
		})
	}
	c.wg.Wait()
	return c.err
}

// one is the single point of an ungrouped, unbucketed result, nil if none.
func one(res *metrics.Result) Value {
	if len(res.Points) == 0 {
		return nil
	}
	v := res.Points[0].Value
	return &v
}

func oneWeight(res *metrics.Result) float64 {
	if len(res.Points) == 0 {
		return 0
	}
	return res.Points[0].Weight
}

func count(res *metrics.Result) float64 {
	if v := one(res); v != nil {
		return *v
	}
	return 0
}

// byValue maps the groups of a result grouped by one dimension to their
// points.
func byValue(res *metrics.Result, dim string) map[string]*metrics.Point {
	out := make(map[string]*metrics.Point, len(res.Points))
	for i := range res.Points {
		out[res.Points[i].Group[dim]] = &res.Points[i]
	}
	return out
}

func valueOf(p *metrics.Point) Value {
	if p == nil {
		return nil
	}
	v := p.Value
	return &v
}

func trend(res *metrics.Result) Trend {
	t := Trend{Metric: res.Metric, Unit: res.Unit, Points: make([]TrendPoint, 0, len(res.Points))}
	for _, p := range res.Points {
		t.Points = append(t.Points, TrendPoint{T: p.Time.UnixMilli(), V: p.Value})
	}
	return t
}

// groupValues returns the sorted union of a dimension's values over
// results grouped by it.
func groupValues(results ...map[string]*metrics.Point) []string {
	seen := map[string]bool{}
	for _, r := range results {
		for v := range r {
			seen[v] = true
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// Compute builds the overview of req for the window ending at now. It is the
// one place the page's figures come from.
func Compute(ctx context.Context, lib *metrics.Library, req Request, now time.Time) (*Overview, error) {
	from, to, bucket, err := Window(req.Range, now)
	if err != nil {
		return nil, err
	}
	ov := &Overview{
		Range: req.Range, From: from, To: to, BucketMs: bucket.Milliseconds(),
		Filters: map[string]string{}, Options: map[string][]string{}, Definitions: map[string]MetricInfo{},
	}
	for k, v := range req.Filters {
		ov.Filters[metricq.Param(k)] = v
	}
	for _, d := range metrics.Definitions() {
		ov.Definitions[d.Name] = MetricInfo{Unit: d.Unit, Description: d.Description, Formula: d.Formula}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := &computer{ctx: ctx, lib: lib, sem: make(chan struct{}, maxParallel),
		base: metrics.Query{From: from, To: to, Filters: req.Filters, Bucket: bucket}}

	// Connection health, overall and by network type.
	h := &ov.Health
	c.compute(metrics.Connections, nil, false, func(r *metrics.Result) { h.Overall.Connections = count(r) })
	c.compute(metrics.ConnectFailures, nil, false, func(r *metrics.Result) { h.Overall.ConnectFailures = count(r) })
	c.compute(metrics.ConnectionSuccessRate, nil, false, func(r *metrics.Result) { h.Overall.SuccessRate = one(r) })
	c.compute(metrics.AvgConnectionDurationMs, nil, false, func(r *metrics.Result) { h.Overall.AvgDurationMs = one(r) })
	c.compute(metrics.ReconnectsPerSession, nil, false, func(r *metrics.Result) { h.Overall.ReconnectsPerSession = one(r) })
	c.compute(metrics.Connections, nil, true, func(r *metrics.Result) { h.ConnectionsTrend = trend(r) })
	c.compute(metrics.ConnectionSuccessRate, nil, true, func(r *metrics.Result) { h.SuccessTrend = trend(r) })
	netHealth := make([]map[string]*metrics.Point, 5)
	for i, m := range []string{metrics.Connections, metrics.ConnectFailures, metrics.ConnectionSuccessRate,
		metrics.AvgConnectionDurationMs, metrics.ReconnectsPerSession} {
		c.compute(m, []string{"network_type"}, false, func(r *metrics.Result) { netHealth[i] = byValue(r, "network_type") })
	}

	// Errors.
	e := &ov.Errors
	c.run(func() error {
		q := c.base
		q.Bucket = 0
		top, err := lib.TopErrors(ctx, q, topErrorsLimit)
		if err != nil {
			return err
		}
		rows := make([]ErrorRow, len(top))
		for i, t := range top {
			rows[i] = ErrorRow{Code: t.Code, Provider: t.Provider, Retryable: t.Retryable, Count: t.Count, Sessions: t.Sessions}
		}
		c.mu.Lock()
		e.Top = rows
		c.mu.Unlock()
		return nil
	})
	c.compute(metrics.ErrorRate, nil, false, func(r *metrics.Result) { e.ErrorRate, e.Sessions = one(r), oneWeight(r) })
	c.compute(metrics.ErrorRate, nil, true, func(r *metrics.Result) { e.Trend = trend(r) })

	// Latency.
	l := &ov.Latency
	rttNames := []string{metrics.RTTAvgMs, metrics.RTTP50Ms, metrics.RTTP95Ms, metrics.RTTP99Ms}
	rttOverall := make([]*metrics.Result, 4)
	rttPipe := make([]map[string]*metrics.Point, 4)
	for i, m := range rttNames {
		c.compute(m, nil, false, func(r *metrics.Result) { rttOverall[i] = r })
		c.compute(m, []string{"pipeline"}, false, func(r *metrics.Result) { rttPipe[i] = byValue(r, "pipeline") })
	}
	l.Trends = make([]Trend, 3)
	for i, m := range []string{metrics.RTTAvgMs, metrics.RTTP95Ms, metrics.RTTP99Ms} {
		c.compute(m, nil, true, func(r *metrics.Result) { l.Trends[i] = trend(r) })
	}

	// Client segmentation: error rate, success rate and volume by each
	// client dimension.
	type segResults struct{ errRate, success, conns map[string]*metrics.Point }
	seg := make([]segResults, len(SegmentDims))
	for i, d := range SegmentDims {
		c.compute(metrics.ErrorRate, []string{d}, false, func(r *metrics.Result) { seg[i].errRate = byValue(r, d) })
		c.compute(metrics.ConnectionSuccessRate, []string{d}, false, func(r *metrics.Result) { seg[i].success = byValue(r, d) })
		c.compute(metrics.Connections, []string{d}, false, func(r *metrics.Result) { seg[i].conns = byValue(r, d) })
	}

	// Throughput.
	t := &ov.Throughput
	c.compute(metrics.MessageRate, nil, false, func(r *metrics.Result) { t.MessageRate = one(r) })
	c.compute(metrics.MessagesSent, nil, false, func(r *metrics.Result) { t.MessagesSent = count(r) })
	c.compute(metrics.BytesPerMessage, nil, false, func(r *metrics.Result) { t.BytesPerMessage = one(r) })
	c.compute(metrics.ThrottleRate, nil, false, func(r *metrics.Result) { t.ThrottleRate = one(r) })
	c.compute(metrics.MessageRate, nil, true, func(r *metrics.Result) { t.Trend = trend(r) })
	jobRes := make([]map[string]*metrics.Point, 4)
	for i, m := range []string{metrics.JobsStarted, metrics.JobsCompleted, metrics.JobsFailed, metrics.JobCompletionRate} {
		c.compute(m, []string{"pipeline"}, false, func(r *metrics.Result) { jobRes[i] = byValue(r, "pipeline") })
	}

	// Filter options: the values seen in the range, without the filters.
	opts := make([]map[string]*metrics.Point, len(FilterDims))
	for i, d := range FilterDims {
		c.ask(metrics.Query{Metric: metrics.Connections, From: from, To: to, GroupBy: []string{d}},
			func(r *metrics.Result) { opts[i] = byValue(r, d) })
	}

	if err := c.wait(); err != nil {
		return nil, err
	}

	// Assemble the grouped parts.
	for _, v := range groupValues(netHealth...) {
		h.ByNetworkType = append(h.ByNetworkType, HealthRow{
			Group:       v,
			Connections: valueOr0(netHealth[0][v]), ConnectFailures: valueOr0(netHealth[1][v]),
			SuccessRate: valueOf(netHealth[2][v]), AvgDurationMs: valueOf(netHealth[3][v]),
			ReconnectsPerSession: valueOf(netHealth[4][v]),
		})
	}
	l.Overall = RTTRow{Avg: one(rttOverall[0]), P50: one(rttOverall[1]), P95: one(rttOverall[2]), P99: one(rttOverall[3]),
		Samples: oneWeight(rttOverall[0])}
	for _, v := range groupValues(rttPipe...) {
		if rttPipe[0][v] == nil {
			continue // no heartbeats
		}
		l.ByPipeline = append(l.ByPipeline, RTTRow{Group: v, Avg: valueOf(rttPipe[0][v]), P50: valueOf(rttPipe[1][v]),
			P95: valueOf(rttPipe[2][v]), P99: valueOf(rttPipe[3][v]), Samples: rttPipe[0][v].Weight})
	}
	for i, d := range SegmentDims {
		ov.Segments = append(ov.Segments, segment(d, seg[i].errRate, seg[i].success, seg[i].conns))
	}
	for _, p := range groupValues(jobRes...) {
		row := PipelineRow{Pipeline: p, Started: valueOr0(jobRes[0][p]), Completed: valueOr0(jobRes[1][p]),
			Failed: valueOr0(jobRes[2][p]), CompletionRate: valueOf(jobRes[3][p])}
		row.Running = max(0, row.Started-row.Completed-row.Failed)
		t.Pipelines = append(t.Pipelines, row)
	}
	for i, d := range FilterDims {
		ov.Options[metricq.Param(d)] = groupValues(opts[i])
	}
	return ov, nil
}

func valueOr0(p *metrics.Point) float64 {
	if p == nil {
		return 0
	}
	return p.Value
}

// segment assembles the segmentation by dimension d from the grouped error
// rate, success rate and connections. Job-level events (job_started,
// producer errors, …) carry no client context: their sessions land in the
// group "" and are left out, since they are not a client segment.
func segment(d string, errRate, success, conns map[string]*metrics.Point) Segment {
	s := Segment{Dimension: d, Rows: []SegmentRow{}}
	// The baseline a segment is compared with: the rates over all segments
	// of this dimension, combined as Σ(value·weight)/Σweight.
	var errNum, errDen, sucNum, sucDen float64
	for v, p := range errRate {
		if v != "" {
			errNum, errDen = errNum+p.Value*p.Weight, errDen+p.Weight
		}
	}
	for v, p := range success {
		if v != "" {
			sucNum, sucDen = sucNum+p.Value*p.Weight, sucDen+p.Weight
		}
	}
	for _, v := range groupValues(errRate, success, conns) {
		if v == "" {
			continue
		}
		row := SegmentRow{Value: v, ErrorRate: valueOf(errRate[v]), SuccessRate: valueOf(success[v]),
			Connections: valueOr0(conns[v])}
		if p := errRate[v]; p != nil {
			row.Sessions = p.Weight
		}
		row.Problem, row.Why = problem(row, ratio(errNum, errDen), ratio(sucNum, sucDen))
		s.Rows = append(s.Rows, row)
	}
	return s
}

func ratio(num, den float64) Value {
	if den == 0 {
		return nil
	}
	v := num / den
	return &v
}

// problem says whether a segment stands out against the baseline error and
// success rates of its dimension, and why.
func problem(row SegmentRow, errRate, success Value) (bool, string) {
	if row.Sessions < minSegmentSessions {
		return false, ""
	}
	if row.ErrorRate != nil && errRate != nil {
		if *row.ErrorRate-*errRate >= problemErrorLift && *row.ErrorRate >= 1.5**errRate {
			return true, "error rate well above the other segments"
		}
	}
	if row.SuccessRate != nil && success != nil && *success-*row.SuccessRate >= problemSuccessDrop {
		return true, "connection success rate well below the other segments"
	}
	return false, ""
}

// overviewCache keeps the last overviews for a moment and computes each
// one once for all who ask at the same time, so that several open pages
// (each streaming every few seconds) cost the store one computation.
type overviewCache struct {
	mu      sync.Mutex
	entries map[string]cacheEntry
	flights map[string]*flight
}

type cacheEntry struct {
	at time.Time
	ov *Overview
}

// flight is a computation in progress; done closes when ov and err are set.
type flight struct {
	done chan struct{}
	ov   *Overview
	err  error
}

// cacheFor is how long an overview is reused.
const cacheFor = time.Second

// load returns the overview of key: cached if computed less than cacheFor
// before now, else from compute, run once for every concurrent caller.
func (c *overviewCache) load(ctx context.Context, key string, now time.Time, compute func(context.Context) (*Overview, error)) (*Overview, error) {
	for {
		c.mu.Lock()
		if e, ok := c.entries[key]; ok && now.Sub(e.at) < cacheFor && !now.Before(e.at) {
			c.mu.Unlock()
			return e.ov, nil
		}
		if f, ok := c.flights[key]; ok {
			c.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			// The caller that computed went away: compute for this one.
			if f.err != nil && ctx.Err() == nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) {
				continue
			}
			return f.ov, f.err
		}
		if c.flights == nil {
			c.flights = map[string]*flight{}
			c.entries = map[string]cacheEntry{}
		}
		f := &flight{done: make(chan struct{})}
		c.flights[key] = f
		c.mu.Unlock()

		f.ov, f.err = compute(ctx)
		c.mu.Lock()
		delete(c.flights, key)
		if f.err == nil {
			for k, e := range c.entries {
				if now.Sub(e.at) >= cacheFor {
					delete(c.entries, k)
				}
			}
			c.entries[key] = cacheEntry{at: now, ov: f.ov}
		}
		c.mu.Unlock()
		close(f.done)
		return f.ov, f.err
	}
}

func cacheKey(req Request) string {
	keys := make([]string, 0, len(req.Filters))
	for k := range req.Filters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	sb.WriteString(req.Range)
	for _, k := range keys {
		sb.WriteString("\x00" + k + "=" + req.Filters[k])
	}
	return sb.String()
}

// build answers req, from the cache when an equal request was computed
// within the last second (or is being computed), with this node's live
// figures filled in.
func (h *Handler) build(ctx context.Context, req Request) (*Overview, error) {
	now := h.opt.Clock.Now()
	key := cacheKey(req)
	ov, err := h.cache.load(ctx, key, now, func(ctx context.Context) (*Overview, error) {
		return Compute(ctx, h.opt.Metrics, req, now)
	})
	if err != nil {
		return nil, err
	}
	out := *ov
	out.StreamIntervalMs = h.opt.StreamInterval.Milliseconds()
	lu := h.live(0)
	out.Health.LiveConnections, out.LiveJobs = lu.LiveConnections, lu.LiveJobs
	out.LiveJobCount, out.Nodes = lu.LiveJobCount, lu.Nodes
	out.Alerts, out.Experiments = h.alertsPanel(ctx), h.experimentsPanel(ctx)
	return &out, nil
}

// LiveUpdate is the stream's "live" event: the live figures, sent every
// StreamInterval, also between overviews. With a node registry the counts
// are sums over every node of the cluster: this node's taken now, the
// others' as they last published them (every few seconds).
type LiveUpdate struct {
	LiveConnections int64 `json:"liveConnections"`
	// LiveJobCount is the jobs with open connections, summed over the
	// nodes: a job watched through two nodes counts twice.
	LiveJobCount int64 `json:"liveJobCount"`
	// LiveJobs are some jobs with open connections on this node.
	LiveJobs []string `json:"liveJobs"`
	// Nodes are the nodes counted, by id; without a registry, this node.
	Nodes []jobcast.NodeStatus `json:"nodes"`
	// NextOverviewMs is when the next overview is due, from now. It grows
	// when overviews take long to compute (a 30-day range over millions of
	// events), so that one open page cannot keep the store busy.
	NextOverviewMs int64 `json:"nextOverviewMs"`
}

// live returns the live figures.
func (h *Handler) live(next time.Duration) LiveUpdate {
	lu := LiveUpdate{LiveJobs: []string{}, Nodes: []jobcast.NodeStatus{}, NextOverviewMs: next.Milliseconds()}
	if h.opt.Live == nil && h.opt.Nodes == nil {
		return lu
	}
	now := h.opt.Clock.Now()
	self := jobcast.NodeStatus{ID: h.opt.NodeID, LastSeen: now.UTC()}
	if h.opt.Live != nil {
		self.Connections = h.opt.Live.ConnCount()
		jobs := map[string]struct{}{}
		for _, c := range h.opt.Live.Connections("") {
			if _, ok := jobs[c.JobID]; ok {
				continue
			}
			jobs[c.JobID] = struct{}{}
			if len(lu.LiveJobs) < maxLiveJobs {
				lu.LiveJobs = append(lu.LiveJobs, c.JobID)
			}
		}
		self.LiveJobs = int64(len(jobs))
	}
	found := false
	for _, st := range h.nodes.list(h, now) {
		if st.ID == self.ID {
			// Version and start time from the registry, the counts fresh.
			st.Connections, st.LiveJobs, st.LastSeen = self.Connections, self.LiveJobs, self.LastSeen
			found = true
		}
		lu.Nodes = append(lu.Nodes, st)
	}
	if !found && h.opt.Live != nil {
		lu.Nodes = append(lu.Nodes, self)
		slices.SortFunc(lu.Nodes, func(a, b jobcast.NodeStatus) int { return strings.Compare(a.ID, b.ID) })
	}
	for _, st := range lu.Nodes {
		lu.LiveConnections += st.Connections
		lu.LiveJobCount += st.LiveJobs
	}
	return lu
}

// nodesRefresh is how long a read of the node registry serves: every open
// page asks every StreamInterval, the nodes publish every few seconds.
const nodesRefresh = time.Second

// nodesTimeout bounds a read of the node registry: a slow NATS must not
// hold up the stream.
const nodesTimeout = 2 * time.Second

// nodesCache keeps the last read of the node registry for nodesRefresh.
type nodesCache struct {
	mu    sync.Mutex
	at    time.Time
	nodes []jobcast.NodeStatus
}

// list returns the registry's statuses, read at most once per nodesRefresh.
// When the read fails the last list serves (the other nodes' figures are
// seconds old anyway) and the failure is logged.
func (c *nodesCache) list(h *Handler, now time.Time) []jobcast.NodeStatus {
	if h.opt.Nodes == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && now.Sub(c.at) < nodesRefresh {
		return c.nodes
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodesTimeout)
	defer cancel()
	l, err := h.opt.Nodes.List(ctx)
	c.at = now
	if err != nil {
		h.opt.Log.Warn("dashboard: node registry not read; live counts may be stale", "err", err)
		return c.nodes
	}
	c.nodes = l
	return l
}

// overview answers GET /dashboard/api/overview.
func (h *Handler) overview(w http.ResponseWriter, r *http.Request) {
	req, err := ParseRequest(r.URL.Query())
	if err != nil {
		httputil.WriteError(w, 0, err)
		return
	}
	ov, err := h.build(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httputil.WriteJSON(w, http.StatusOK, ov)
}
