package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/experimentstoretest"
	"github.com/jobcast/jobcast/sqlite"
)

// TestExperimentStore runs the conformance suite; each handle is another
// process on the same file.
func TestExperimentStore(t *testing.T) {
	t.Parallel()
	experimentstoretest.Run(t, func(t *testing.T) experimentstoretest.Open {
		path := filepath.Join(t.TempDir(), "jobcast.db")
		return func(t *testing.T) experimentstoretest.Store {
			t.Helper()
			st, err := sqlite.OpenExperimentStore(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}
	})
}

// TestExperimentStoreReopen: reopening migrates nothing twice and keeps
// everything.
func TestExperimentStoreReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "jobcast.db")
	st, err := sqlite.OpenExperimentStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	e := &jobcast.Experiment{ID: "hb", Parameter: jobcast.ParamHeartbeatInterval, Coverage: 1, Status: jobcast.ExperimentRunning, CreatedAt: now}
	if err := st.CreateExperiment(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
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
