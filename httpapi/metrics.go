package httpapi

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/httputil"
	"github.com/jobcast/jobcast/internal/metricq"
	"github.com/jobcast/jobcast/metrics"
	"github.com/jobcast/jobcast/protocol"
)

// MetricDefinition is one metric in the answer of GET /v1/metrics.
type MetricDefinition struct {
	Name        string `json:"name"`
	Unit        string `json:"unit"`
	Description string `json:"description"`
	Formula     string `json:"formula"`
}

// MetricDefinitions is the answer of GET /v1/metrics: every metric, and the
// dimensions a metric query may filter and group by.
type MetricDefinitions struct {
	Metrics    []MetricDefinition `json:"metrics"`
	Dimensions []string           `json:"dimensions"`
}

// MetricPoint is one value of a metric: for one group, in one bucket. See
// metrics.Point.
type MetricPoint struct {
	Time   time.Time         `json:"time"`
	Group  map[string]string `json:"group,omitempty"`
	Value  float64           `json:"value"`
	Weight float64           `json:"weight"`
}

// MetricResponse is the answer of GET /v1/metrics/{name}: the metric over
// the window [from, to), one point per group (and bucket).
type MetricResponse struct {
	Metric  string        `json:"metric"`
	Unit    string        `json:"unit"`
	From    time.Time     `json:"from"`
	To      time.Time     `json:"to"`
	Bucket  string        `json:"bucket,omitempty"`
	GroupBy []string      `json:"groupBy"`
	Points  []MetricPoint `json:"points"`
}

func (a *API) metricDefinitions(w http.ResponseWriter, r *http.Request) {
	defs := metrics.Definitions()
	resp := MetricDefinitions{Metrics: make([]MetricDefinition, len(defs)), Dimensions: metrics.Dimensions()}
	for i, d := range defs {
		resp.Metrics[i] = MetricDefinition{Name: d.Name, Unit: d.Unit, Description: d.Description, Formula: d.Formula}
	}
	httputil.WriteJSON(w, http.StatusOK, resp)
}

// metric answers one metric: GET /v1/metrics/{name}?last=1h (or from=&to=),
// groupBy=network_type,pipeline, bucket=5m, and a filter per dimension
// (pipeline=csv_import, networkType=wifi; snake_case names work too).
func (a *API) metric(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !slices.ContainsFunc(metrics.Definitions(), func(d metrics.Definition) bool { return d.Name == name }) {
		httputil.WriteError(w, http.StatusNotFound, jobcast.Errorf("E_NOT_FOUND", "unknown metric %q: GET /v1/metrics lists them", name))
		return
	}
	q, bucket, err := metricQuery(r, a.opt.Clock.Now())
	if err != nil {
		httputil.WriteError(w, 0, err)
		return
	}
	q.Metric = name
	res, err := a.opt.MetricsLib.Compute(r.Context(), q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	resp := MetricResponse{
		Metric: res.Metric, Unit: res.Unit, From: q.From, To: q.To, Bucket: bucket,
		GroupBy: q.GroupBy, Points: make([]MetricPoint, len(res.Points)),
	}
	if resp.GroupBy == nil {
		resp.GroupBy = []string{}
	}
	for i, p := range res.Points {
		resp.Points[i] = MetricPoint{Time: p.Time, Group: p.Group, Value: p.Value, Weight: p.Weight}
	}
	httputil.WriteJSON(w, http.StatusOK, resp)
}

// metricQuery reads a metric query's parameters. Unknown parameters are
// refused, so a misspelt filter cannot widen the answer unnoticed.
func metricQuery(r *http.Request, now time.Time) (metrics.Query, string, error) {
	var (
		q        metrics.Query
		from, to time.Time
		err      error
	)
	params := r.URL.Query()
	one := func(k string) (string, error) {
		if v := params[k]; len(v) > 1 {
			return "", jobcast.Errorf(protocol.ErrBadRequest, "parameter %s given %d times", k, len(v))
		}
		return params.Get(k), nil
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var last, bucket string
	for _, k := range keys {
		switch k {
		case "last":
			if last, err = one(k); err == nil && last == "" {
				err = jobcast.Errorf(protocol.ErrBadRequest, "last is empty: give a duration such as 1h, 24h, 7d or 30d")
			}
		case "from", "to":
			var v string
			var t time.Time
			if v, err = one(k); err == nil {
				t, err = metricq.ParseTime(k, v)
			}
			if k == "from" {
				from = t
			} else {
				to = t
			}
		case "groupBy", "group_by":
			for _, list := range params[k] {
				for _, g := range strings.Split(list, ",") {
					d, derr := metricq.Dimension(strings.TrimSpace(g))
					if derr != nil {
						return q, "", derr
					}
					q.GroupBy = append(q.GroupBy, d)
				}
			}
		case "bucket":
			if bucket, err = one(k); err == nil {
				q.Bucket, err = metricq.ParseDuration("bucket", bucket)
			}
		default:
			d, derr := metricq.Dimension(k)
			if derr != nil {
				return q, "", jobcast.Errorf(protocol.ErrBadRequest,
					"unknown parameter %q: use last, from, to, groupBy, bucket, or a filter on %s", k, strings.Join(filterParams(), ", "))
			}
			var v string
			if v, err = one(k); err == nil {
				if _, dup := q.Filters[d]; dup {
					err = jobcast.Errorf(protocol.ErrBadRequest, "filter %s given twice", metricq.Param(d))
				}
				if q.Filters == nil {
					q.Filters = map[string]string{}
				}
				q.Filters[d] = v
			}
		}
		if err != nil {
			return q, "", err
		}
	}
	if q.From, q.To, err = metricq.Window(last, from, to, now); err != nil {
		return q, "", err
	}
	return q, bucket, nil
}

// filterParams are the filter parameters' names, in camelCase.
func filterParams() []string {
	dims := metrics.Dimensions()
	for i, d := range dims {
		dims[i] = metricq.Param(d)
	}
	return dims
}
