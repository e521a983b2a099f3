package gql_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/duckdb"
	"github.com/jobcast/jobcast/experiment"
	"github.com/jobcast/jobcast/gql"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/sqlite"
)

// resultsQuery selects every field of experimentResults.
const resultsQuery = `query($id: String!) { experimentResults(id: $id) {
  experimentId parameter status computedAt control
  arms { name value units expectedShare observedShare }
  srm { chiSquare p flagged }
  minUnitsPerArm enoughUnits
  metrics { name test description
    arms { name value lo hi n }
    comparisons { variant diff diffLo diffHi lift liftLo liftHi p pAdjusted significant } }
  warnings } }`

// experimentsQuery selects every field of experiments.
const experimentsQuery = `{ experiments {
  id description parameter control variant split
  variants { name value weight }
  coverage
  segment { networkType pipeline deviceModel osVersion appVersion }
  namespace { name start end }
  unit seed status minUnitsPerArm createdAt updatedAt startedAt stoppedAt } }`

// experimentService is an experiment service over SQLite (experiments)
// and DuckDB (events) holding two experiments: "hb", a two-arm heartbeat
// experiment with exposures and outcomes for 40 units, and "multi", three
// weighted arms in a namespace and a segment, without data (so its
// estimates are null).
func experimentService(t *testing.T) *experiment.Service {
	t.Helper()
	ctx := context.Background()
	events, err := duckdb.Open(ctx, filepath.Join(t.TempDir(), "events.duckdb"), duckdb.Options{Threads: 1, MemoryLimit: "256MB"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { events.Close() })
	st, err := sqlite.OpenExperimentStore(ctx, filepath.Join(t.TempDir(), "jobcast.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := experiment.New(ctx, experiment.Options{Store: st, Telemetry: events, Clock: clocktest.New(t0)})
	if err != nil {
		t.Fatal(err)
	}
	c, v := int64(30000), int64(45000)
	if _, err := svc.Create(ctx, jobcast.Experiment{ID: "hb", Description: "slower heartbeats on cellular",
		Parameter: jobcast.ParamHeartbeatInterval, Control: &c, Variant: &v, Coverage: 1, Status: "running",
		Segment: jobcast.Segment{NetworkType: jobcast.StringList{"cellular"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Create(ctx, jobcast.Experiment{ID: "multi", Parameter: jobcast.ParamHeartbeatInterval,
		Variants: []jobcast.Variant{{Name: "control", Value: 30000, Weight: 2}, {Name: "v45", Value: 45000, Weight: 1},
			{Name: "v60", Value: 60000, Weight: 1}},
		Coverage: 0.5, Namespace: &jobcast.Namespace{Name: "hb", Start: 0, End: 0.5}, Seed: "s1", Status: "draft",
		MinUnitsPerArm: 10, Segment: jobcast.Segment{OSVersion: "iOS >=17", AppVersion: ">=2", DeviceModel: jobcast.StringList{"iPhone*"}}}); err != nil {
		t.Fatal(err)
	}
	var evs []jobcast.Event
	for i := range 40 {
		arm, job := "control", fmt.Sprintf("u%02d", i)
		if i%2 == 1 {
			arm = "variant"
		}
		at := func(s int) time.Time { return t0.Add(time.Duration(i)*time.Minute + time.Duration(s)*time.Second) }
		evs = append(evs, jobcast.Event{TS: at(0), Event: jobcast.EventExposure, JobID: job, ExperimentID: "hb",
			Variant: arm, Param: jobcast.ParamHeartbeatInterval, Value: "30000"})
		for r := range i % 3 {
			evs = append(evs, jobcast.Event{TS: at(1 + r), Event: jobcast.EventReconnected, JobID: job})
		}
		for h := range 1 + i%4 {
			evs = append(evs, jobcast.Event{TS: at(5 + h), Event: jobcast.EventHeartbeat, JobID: job,
				RTTMs: float64(20 + (i*7+h*13)%90), SampleInterval: 1})
		}
		evs = append(evs, jobcast.Event{TS: at(30), Event: jobcast.EventDisconnected, JobID: job,
			DurationMs: int64(10_000 + 1_000*(i%7)), ProgressSent: int64(5 + i%5), ThrottledCount: int64(i % 3)})
		end := jobcast.EventJobCompleted
		if i%5 == 0 {
			end = jobcast.EventJobFailed
		}
		evs = append(evs, jobcast.Event{TS: at(40), Event: end, JobID: job})
	}
	if err := events.Write(ctx, evs); err != nil {
		t.Fatal(err)
	}
	return svc
}

// restGet answers GET path from the experiments REST API.
func restGet(t *testing.T, svc *experiment.Service, path string) []byte {
	t.Helper()
	rec := httptest.NewRecorder()
	svc.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	return rec.Body.Bytes()
}

// dropNulls removes the null members of every object in doc: REST leaves
// out empty optional fields where GraphQL answers null.
func dropNulls(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e == nil {
				delete(x, k)
				continue
			}
			x[k] = dropNulls(e)
		}
	case []any:
		for i, e := range x {
			x[i] = dropNulls(e)
		}
	}
	return v
}

// field decodes doc, takes its member name and writes it back without
// nulls.
func field(t *testing.T, doc []byte, name string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
	out, err := json.Marshal(dropNulls(m[name]))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestExperimentResultsMatchREST checks that a query selecting every field
// of experimentResults answers exactly the REST results document, with
// data and without (where every estimate is null), and that experiments
// answers GET /v1/experiments' list.
func TestExperimentResultsMatchREST(t *testing.T) {
	t.Parallel()
	lib, _ := openFixture(t)
	svc := experimentService(t)
	h, err := gql.NewHandler(lib, nil, gql.WithExperiments(svc))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"hb", "multi"} {
		t.Run(id, func(t *testing.T) {
			resp := exec(t, h, resultsQuery, map[string]any{"id": id})
			if len(resp.Errors) > 0 {
				t.Fatalf("errors: %+v", resp.Errors)
			}
			rest := restGet(t, svc, "/v1/experiments/"+id+"/results")
			if id == "hb" && !strings.Contains(string(rest), `"lift":0.`) && !strings.Contains(string(rest), `"lift":-0.`) {
				t.Errorf("the fixture should give hb lifts: %s", rest)
			}
			var doc map[string]any
			if err := json.Unmarshal(rest, &doc); err != nil {
				t.Fatal(err)
			}
			if _, ok := doc["warnings"]; !ok { // omitempty in REST, [] in GraphQL
				doc["warnings"] = []any{}
			}
			want, _ := json.Marshal(dropNulls(doc))
			equalJSON(t, field(t, resp.Data, "experimentResults"), string(want))
		})
	}
	resp := exec(t, h, experimentsQuery, nil)
	if len(resp.Errors) > 0 {
		t.Fatalf("errors: %+v", resp.Errors)
	}
	equalJSON(t, field(t, resp.Data, "experiments"), string(field(t, restGet(t, svc, "/v1/experiments"), "experiments")))
}

type fakeExperiments struct{}

func (fakeExperiments) List(context.Context) ([]jobcast.Experiment, error) {
	return nil, jobcast.ErrExperimentNotFound
}

func (fakeExperiments) Results(_ context.Context, id string) (*experiment.Results, error) {
	return nil, jobcast.ErrExperimentNotFound
}

// TestExperimentErrors checks the errors: an unknown experiment, and a
// server without the experiment service.
func TestExperimentErrors(t *testing.T) {
	t.Parallel()
	lib, _ := openFixture(t)
	h, err := gql.NewHandler(lib, nil, gql.WithExperiments(fakeExperiments{}))
	if err != nil {
		t.Fatal(err)
	}
	resp := exec(t, h, `{ experimentResults(id: "nope") { experimentId } }`, nil)
	if len(resp.Errors) != 1 || !strings.Contains(resp.Errors[0].Message, "experiment not found") {
		t.Errorf("unknown experiment: %+v", resp.Errors)
	}
	without, err := gql.NewHandler(lib, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`{ experimentResults(id: "hb") { experimentId } }`, `{ experiments { id } }`} {
		if resp := exec(t, without, q, nil); len(resp.Errors) != 1 || !strings.Contains(resp.Errors[0].Message, "not available") {
			t.Errorf("%s without experiments: %+v", q, resp)
		}
	}
}
