// Package experimentstoretest is the conformance suite of
// jobcast.ExperimentStore: every implementation (SQLite embedded, NATS KV
// in cluster mode) runs it, so that the experiment service behaves the
// same on both. The behaviours come from the SQLite store's first tests.
package experimentstoretest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
)

// Store is what the suite tests: the interface, and a count of the
// assignments that both implementations offer for tests.
type Store interface {
	jobcast.ExperimentStore
	CountAssignments(ctx context.Context, experimentID string) (decided, enrolled int64, err error)
}

// Open returns another handle on one backend's data: a second process on
// the same SQLite file, a second node on the same NATS server. Handles are
// closed by the test's cleanup.
type Open func(t *testing.T) Store

// Run runs the suite. newBackend returns an opener on fresh, empty data;
// it is called once per subtest.
func Run(t *testing.T, newBackend func(t *testing.T) Open) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, open Open)
	}{
		{"CreateGetUpdate", testCreateGetUpdate},
		{"ListOrder", testListOrder},
		{"StickyConcurrent", testStickyConcurrent},
		{"StickyPartial", testStickyPartial},
		{"Retention", testRetention},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newBackend(t))
		})
	}
}

var t0 = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

func experiment(id string, created time.Time) *jobcast.Experiment {
	return &jobcast.Experiment{ID: id, Parameter: jobcast.ParamHeartbeatInterval, Coverage: 1, Status: jobcast.ExperimentDraft,
		Unit: jobcast.UnitJob, CreatedAt: created, UpdatedAt: created,
		Variants: []jobcast.Variant{{Name: "control", Value: 30000, Weight: 0.5}, {Name: "variant", Value: 45000, Weight: 0.5}}}
}

func testCreateGetUpdate(t *testing.T, open Open) {
	ctx := context.Background()
	st, other := open(t), open(t)
	e := experiment("hb", t0)
	if err := st.CreateExperiment(ctx, e); err != nil {
		t.Fatal(err)
	}
	// The id is taken for every handle.
	if err := other.CreateExperiment(ctx, e); !errors.Is(err, jobcast.ErrExperimentExists) {
		t.Fatalf("second create: %v, want ErrExperimentExists", err)
	}
	e.Status, e.StartedAt = jobcast.ExperimentRunning, t0.Add(time.Minute)
	if err := other.UpdateExperiment(ctx, e); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetExperiment(ctx, "hb")
	if err != nil || !reflect.DeepEqual(got, e) {
		t.Fatalf("get: %+v %v, want %+v", got, err, e)
	}
	if err := st.UpdateExperiment(ctx, &jobcast.Experiment{ID: "nope"}); !errors.Is(err, jobcast.ErrExperimentNotFound) {
		t.Fatalf("update unknown: %v, want ErrExperimentNotFound", err)
	}
	if _, err := st.GetExperiment(ctx, "nope"); !errors.Is(err, jobcast.ErrExperimentNotFound) {
		t.Fatalf("get unknown: %v, want ErrExperimentNotFound", err)
	}
	// A handle opened later (a restart, another node) sees the update.
	list, err := open(t).ListExperiments(ctx)
	if err != nil || len(list) != 1 || list[0].Status != jobcast.ExperimentRunning {
		t.Fatalf("list from a new handle: %+v %v", list, err)
	}
}

func testListOrder(t *testing.T, open Open) {
	ctx := context.Background()
	st := open(t)
	if list, err := st.ListExperiments(ctx); err != nil || len(list) != 0 {
		t.Fatalf("empty store lists %+v %v", list, err)
	}
	// Created out of order; ids with characters keys may not hold.
	for _, e := range []*jobcast.Experiment{
		experiment("c late", t0.Add(2*time.Hour)),
		experiment("b.tie", t0.Add(time.Hour)),
		experiment("a/tie", t0.Add(time.Hour)),
		experiment("first*", t0),
	} {
		if err := st.CreateExperiment(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	list, err := st.ListExperiments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range list {
		ids = append(ids, e.ID)
	}
	if want := []string{"first*", "a/tie", "b.tie", "c late"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("list order %q, want %q (oldest first, then by id)", ids, want)
	}
}

// testStickyConcurrent: many concurrent first calls for one unit, through
// two handles, store one decision each, and exactly one caller sees it as
// new.
func testStickyConcurrent(t *testing.T, open Open) {
	ctx := context.Background()
	nodes := []Store{open(t), open(t)}
	const callers = 8
	var wg sync.WaitGroup
	results := make([][]jobcast.Assignment, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := nodes[i%2].StickAssignments(ctx, "job.1", []jobcast.Assignment{
				{ExperimentID: "hb", Enrolled: true, Variant: fmt.Sprintf("arm-%d", i), AssignedAt: t0},
				{ExperimentID: "other", Enrolled: false, AssignedAt: t0},
			})
			if err != nil {
				t.Error(err)
			}
			results[i] = got
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	news := 0
	for _, got := range results {
		if len(got) != 2 || got[0].Variant != results[0][0].Variant || !got[0].Enrolled || got[1].Enrolled ||
			got[0].ExperimentID != "hb" || got[1].ExperimentID != "other" || got[0].UnitID != "job.1" {
			t.Fatalf("callers disagree: %+v vs %+v", got, results[0])
		}
		if got[0].New {
			news++
		}
		if got[0].New != got[1].New {
			t.Fatalf("one call stored both decisions of the unit, or neither: %+v", got)
		}
	}
	if news != 1 {
		t.Fatalf("%d callers saw the assignment as new, want 1", news)
	}
	// A later call with another proposal keeps the stored decision.
	got, err := nodes[1].StickAssignments(ctx, "job.1", []jobcast.Assignment{{ExperimentID: "hb", Enrolled: false, AssignedAt: t0.Add(time.Hour)}})
	if err != nil || len(got) != 1 || got[0].New || got[0].Variant != results[0][0].Variant || !got[0].Enrolled || !got[0].AssignedAt.Equal(t0) {
		t.Fatalf("sticky: %+v %v", got, err)
	}
	decided, enrolled, err := nodes[0].CountAssignments(ctx, "hb")
	if err != nil || decided != 1 || enrolled != 1 {
		t.Fatalf("count: %d %d %v, want 1 1", decided, enrolled, err)
	}
}

// testStickyPartial: a unit that met one experiment meets a second; only
// the second is new.
func testStickyPartial(t *testing.T, open Open) {
	ctx := context.Background()
	st := open(t)
	if _, err := st.StickAssignments(ctx, "u", []jobcast.Assignment{{ExperimentID: "a", Enrolled: true, Variant: "control", AssignedAt: t0}}); err != nil {
		t.Fatal(err)
	}
	got, err := st.StickAssignments(ctx, "u", []jobcast.Assignment{
		{ExperimentID: "a", Enrolled: true, Variant: "variant", AssignedAt: t0.Add(time.Hour)},
		{ExperimentID: "b", Enrolled: true, Variant: "variant", AssignedAt: t0.Add(time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []jobcast.Assignment{
		{ExperimentID: "a", UnitID: "u", Enrolled: true, Variant: "control", AssignedAt: t0},
		{ExperimentID: "b", UnitID: "u", Enrolled: true, Variant: "variant", AssignedAt: t0.Add(time.Hour), New: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// Nothing proposed, nothing returned.
	if got, err := st.StickAssignments(ctx, "u", nil); err != nil || len(got) != 0 {
		t.Fatalf("empty proposal: %+v %v", got, err)
	}
}

func testRetention(t *testing.T, open Open) {
	ctx := context.Background()
	st := open(t)
	for i, unit := range []string{"old-1", "old-2", "new-1"} {
		at := t0
		if i == 2 {
			at = t0.Add(time.Hour)
		}
		if _, err := st.StickAssignments(ctx, unit, []jobcast.Assignment{{ExperimentID: "hb", Enrolled: true, Variant: "control", AssignedAt: at}}); err != nil {
			t.Fatal(err)
		}
	}
	// One unit holds an old and a new decision: only the old one goes.
	if _, err := st.StickAssignments(ctx, "new-1", []jobcast.Assignment{{ExperimentID: "older", Enrolled: false, AssignedAt: t0}}); err != nil {
		t.Fatal(err)
	}
	n, err := st.DeleteAssignmentsBefore(ctx, t0.Add(time.Minute))
	if err != nil || n != 3 {
		t.Fatalf("deleted %d, %v; want 3", n, err)
	}
	if decided, _, _ := st.CountAssignments(ctx, "hb"); decided != 1 {
		t.Fatalf("%d assignments left, want 1", decided)
	}
	if decided, _, _ := st.CountAssignments(ctx, "older"); decided != 0 {
		t.Fatalf("%d old assignments left, want 0", decided)
	}
	// A deleted unit is decided afresh.
	got, err := st.StickAssignments(ctx, "old-1", []jobcast.Assignment{{ExperimentID: "hb", Enrolled: true, Variant: "variant", AssignedAt: t0.Add(2 * time.Hour)}})
	if err != nil || len(got) != 1 || !got[0].New || got[0].Variant != "variant" {
		t.Fatalf("after retention: %+v %v", got, err)
	}
}
