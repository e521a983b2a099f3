package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/alertstoretest"
	"github.com/jobcast/jobcast/sqlite"
)

// TestAlertStore runs the conformance suite; each handle is another
// process on the same file.
func TestAlertStore(t *testing.T) {
	t.Parallel()
	alertstoretest.Run(t, func(t *testing.T) alertstoretest.Open {
		path := filepath.Join(t.TempDir(), "jobcast.db")
		return func(t *testing.T) jobcast.AlertStore {
			t.Helper()
			s, err := sqlite.OpenAlertStore(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	})
}

// TestAlertStoreSharesTheFile: the alert tables migrate beside the job
// tables, which stay untouched, and a reopen migrates nothing twice.
func TestAlertStoreSharesTheFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "jobcast.db")
	jobs, err := sqlite.OpenJobStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer jobs.Close()
	s, err := sqlite.OpenAlertStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetAPIRules(ctx, "rules: []\n"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.OpenAlertStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if doc, err := s.APIRules(ctx); err != nil || doc != "rules: []\n" {
		t.Fatalf("API rules %q %v", doc, err)
	}
	if _, err := jobs.GetJob(ctx, "nope"); !errors.Is(err, jobcast.ErrJobNotFound) {
		t.Fatalf("job store after the alert migration: %v", err)
	}
}
