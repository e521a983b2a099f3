package gql_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/experiment"
	"github.com/jobcast/jobcast/gql"
)

type fakeExperiments struct{}

func (fakeExperiments) Results(_ context.Context, id string) (*experiment.Results, error) {
	if id != "hb" {
		return nil, jobcast.ErrExperimentNotFound
	}
	return &experiment.Results{ExperimentID: "hb", Parameter: jobcast.ParamHeartbeatInterval, Control: "control",
		Arms: []experiment.ArmResult{{Name: "control", Value: 30000, Units: 12}}, MinUnitsPerArm: 1000}, nil
}

func TestExperimentResults(t *testing.T) {
	t.Parallel()
	lib, _ := openFixture(t)
	h, err := gql.NewHandler(lib, nil, gql.WithExperiments(fakeExperiments{}))
	if err != nil {
		t.Fatal(err)
	}
	resp := exec(t, h, `{ experimentResults(id: "hb") }`, nil)
	if len(resp.Errors) > 0 {
		t.Fatalf("errors: %+v", resp.Errors)
	}
	if s := string(resp.Data); !strings.Contains(s, `"experimentId":"hb"`) || !strings.Contains(s, `"units":12`) {
		t.Errorf("data %s", s)
	}
	resp = exec(t, h, `{ experimentResults(id: "nope") }`, nil)
	if len(resp.Errors) != 1 || !strings.Contains(resp.Errors[0].Message, "experiment not found") {
		t.Errorf("unknown experiment: %+v", resp.Errors)
	}
	without, err := gql.NewHandler(lib, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp := exec(t, without, `{ experimentResults(id: "hb") }`, nil); len(resp.Errors) != 1 {
		t.Errorf("without experiments: %+v", resp)
	}
}
