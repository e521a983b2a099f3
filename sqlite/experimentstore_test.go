package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/sqlite"
)

func TestExperimentStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "jobcast.db")
	st, err := sqlite.OpenExperimentStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	e := &jobcast.Experiment{ID: "hb", Parameter: jobcast.ParamHeartbeatInterval, Coverage: 1, Status: jobcast.ExperimentDraft, CreatedAt: now,
		Variants: []jobcast.Variant{{Name: "control", Value: 30000, Weight: 0.5}, {Name: "variant", Value: 45000, Weight: 0.5}}}
	if err := st.CreateExperiment(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateExperiment(ctx, e); !errors.Is(err, jobcast.ErrExperimentExists) {
		t.Fatalf("second create: %v", err)
	}
	e.Status = jobcast.ExperimentRunning
	if err := st.UpdateExperiment(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateExperiment(ctx, &jobcast.Experiment{ID: "nope"}); !errors.Is(err, jobcast.ErrExperimentNotFound) {
		t.Fatalf("update unknown: %v", err)
	}
	if _, err := st.GetExperiment(ctx, "nope"); !errors.Is(err, jobcast.ErrExperimentNotFound) {
		t.Fatalf("get unknown: %v", err)
	}

	// Sticky: many concurrent first calls for one unit store one decision
	// each, and exactly one caller sees it as new.
	const callers = 8
	var wg sync.WaitGroup
	results := make([][]jobcast.Assignment, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			variant := fmt.Sprintf("arm-%d", i)
			got, err := st.StickAssignments(ctx, "job-1", []jobcast.Assignment{
				{ExperimentID: "hb", Enrolled: true, Variant: variant, AssignedAt: now},
				{ExperimentID: "other", Enrolled: false, AssignedAt: now},
			})
			if err != nil {
				t.Error(err)
			}
			results[i] = got
		}()
	}
	wg.Wait()
	news := 0
	for _, got := range results {
		if len(got) != 2 || got[0].Variant != results[0][0].Variant || !got[0].Enrolled || got[1].Enrolled {
			t.Fatalf("callers disagree: %+v vs %+v", got, results[0])
		}
		if got[0].New {
			news++
		}
	}
	if news != 1 {
		t.Fatalf("%d callers saw the assignment as new, want 1", news)
	}
	// A later call with another proposal keeps the stored decision.
	got, err := st.StickAssignments(ctx, "job-1", []jobcast.Assignment{{ExperimentID: "hb", Enrolled: false, AssignedAt: now}})
	if err != nil || len(got) != 1 || got[0].New || got[0].Variant != results[0][0].Variant || !got[0].AssignedAt.Equal(now) {
		t.Fatalf("sticky: %+v %v", got, err)
	}
	decided, enrolled, err := st.CountAssignments(ctx, "hb")
	if err != nil || decided != 1 || enrolled != 1 {
		t.Fatalf("count: %d %d %v", decided, enrolled, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopening migrates nothing twice and keeps everything.
	st, err = sqlite.OpenExperimentStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	list, err := st.ListExperiments(ctx)
	if err != nil || len(list) != 1 || list[0].Status != jobcast.ExperimentRunning {
		t.Fatalf("after reopen: %+v %v", list, err)
	}
}

func TestExperimentAssignmentsRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.OpenExperimentStore(ctx, filepath.Join(t.TempDir(), "jobcast.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	for i, unit := range []string{"old-1", "old-2", "new-1"} {
		at := t0
		if i == 2 {
			at = t0.Add(time.Hour)
		}
		if _, err := st.StickAssignments(ctx, unit, []jobcast.Assignment{{ExperimentID: "hb", Enrolled: true, Variant: "control", AssignedAt: at}}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := st.DeleteAssignmentsBefore(ctx, t0.Add(time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("deleted %d, %v; want 2", n, err)
	}
	if decided, _, _ := st.CountAssignments(ctx, "hb"); decided != 1 {
		t.Fatalf("%d assignments left, want 1", decided)
	}
}
