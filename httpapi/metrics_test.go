package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/httpapi"
	"github.com/jobcast/jobcast/internal/jobcasttest"
	"github.com/jobcast/jobcast/metrics"
)

// brokenStore is a telemetry store whose every query fails with an internal
// error, counting the calls. The numbers of GET /v1/metrics/{name} are
// checked against the real DuckDB store in cmd/jobcast (this package's tests
// do not link DuckDB); here the store only proves what never reaches it and
// that its failures stay internal.
type brokenStore struct {
	jobcast.TelemetryStore
	queries atomic.Int64
}

func (*brokenStore) Dialect() string { return "duckdb" }
func (s *brokenStore) Query(context.Context, string, ...any) (*jobcast.Rows, error) {
	s.queries.Add(1)
	return nil, errors.New("disk on fire at /var/lib/jobcast/telemetry.duckdb")
}

func TestMetricsEndpoints(t *testing.T) {
	t.Parallel()
	srv := jobcasttest.Start(t, jobcasttest.Options{})
	store := &brokenStore{}
	graphql := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"data":{}}`)) })
	api := httpapi.New(httpapi.Options{Config: srv.Config, Jobs: srv.Jobs, Hub: srv.Hub, Tokens: srv.Tokens,
		Clock: jobcast.SystemClock{}, MetricsLib: metrics.New(store), GraphQL: graphql})
	ts := httptest.NewServer(api)
	defer ts.Close()
	admin := jobcasttest.AdminToken

	t.Run("definitions", func(t *testing.T) {
		a := do(t, "GET", ts.URL+"/v1/metrics", admin, "", nil)
		if a.status != 200 {
			t.Fatalf("%d %s", a.status, a.raw)
		}
		list, _ := a.body["metrics"].([]any)
		if len(list) != len(metrics.Definitions()) {
			t.Fatalf("%d metrics, want %d", len(list), len(metrics.Definitions()))
		}
		first, _ := list[0].(map[string]any)
		d := metrics.Definitions()[0]
		if first["name"] != d.Name || first["unit"] != d.Unit || first["formula"] != d.Formula || first["description"] != d.Description {
			t.Errorf("first metric %v, want %+v", first, d)
		}
		if dims, _ := a.body["dimensions"].([]any); len(dims) != len(metrics.Dimensions()) {
			t.Errorf("dimensions %v", a.body["dimensions"])
		}
	})

	for _, c := range []struct {
		name, method, path, token string
		status                    int
		msg                       string
	}{
		{"no_token_definitions", "GET", "/v1/metrics", "", 401, "admin token"},
		{"producer_key_metric", "GET", "/v1/metrics/connections", jobcasttest.APIKey, 401, "admin token"},
		{"no_token_graphql", "POST", "/graphql", "", 401, "admin token"},
		{"wrong_token_graphql", "POST", "/graphql", "not-the-admin-token", 401, "admin token"},
		{"unknown_metric", "GET", "/v1/metrics/nope", admin, 404, `unknown metric "nope": GET /v1/metrics lists them`},
		{"bad_last", "GET", "/v1/metrics/connections?last=banana", admin, 400, `last "banana" is not a duration`},
		{"empty_last", "GET", "/v1/metrics/connections?last=", admin, 400, "last is empty"},
		{"last_and_from", "GET", "/v1/metrics/connections?last=1h&from=2026-01-05T10:00:00Z", admin, 400, "either last or from/to"},
		{"bad_from", "GET", "/v1/metrics/connections?from=yesterday", admin, 400, `from "yesterday" is not an RFC 3339 time`},
		{"empty_window", "GET", "/v1/metrics/connections?from=2026-01-05T11:00:00Z&to=2026-01-05T10:00:00Z", admin, 400, "window is empty"},
		{"to_only", "GET", "/v1/metrics/connections?to=2026-01-05T11:00:00Z", admin, 400, "to needs a from"},
		{"bad_group", "GET", "/v1/metrics/connections?groupBy=network_type,color", admin, 400, `unknown dimension "color"`},
		{"group_twice", "GET", "/v1/metrics/connections?groupBy=network_type,networkType", admin, 400, `group by "network_type" twice`},
		{"bad_bucket", "GET", "/v1/metrics/connections?bucket=5x", admin, 400, `bucket "5x" is not a duration`},
		{"too_many_buckets", "GET", "/v1/metrics/connections?last=30d&bucket=1s", admin, 400, "at most 10000"},
		{"unknown_param", "GET", "/v1/metrics/connections?color=red", admin, 400, `unknown parameter "color": use last, from, to, groupBy, bucket, or a filter on pipeline, appVersion`},
		{"filter_twice", "GET", "/v1/metrics/connections?pipeline=a&pipeline=b", admin, 400, "parameter pipeline given 2 times"},
		{"filter_both_spellings", "GET", "/v1/metrics/connections?networkType=wifi&network_type=cellular", admin, 400, "filter networkType given twice"},
		{"store_failure", "GET", "/v1/metrics/connections?last=1h&groupBy=pipeline&networkType=wifi", admin, 500, "internal error"},
		{"graphql", "POST", "/graphql", admin, 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := store.queries.Load()
			a := do(t, c.method, ts.URL+c.path, c.token, "", nil)
			if a.status != c.status {
				t.Fatalf("%d %s, want %d", a.status, a.raw, c.status)
			}
			if c.msg != "" && !strings.Contains(a.errMessage(), c.msg) {
				t.Errorf("message %q, want it to contain %q", a.errMessage(), c.msg)
			}
			if strings.Contains(a.raw, "disk on fire") {
				t.Errorf("internal error text leaked: %s", a.raw)
			}
			if n := store.queries.Load() - before; c.status != 500 && n != 0 {
				t.Errorf("the store was queried %d times", n)
			}
		})
	}
}
