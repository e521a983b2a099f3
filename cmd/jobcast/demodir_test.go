package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFreshDemoDir: the demo deletes the stores only of a data dir an
// earlier demo marked, keeps its config, and marks the one it uses.
func TestFreshDemoDir(t *testing.T) {
	t.Parallel()
	root := t.TempDir()

	// A dir without the marker (the user's data) is kept as it is.
	user := filepath.Join(root, "user")
	if err := os.MkdirAll(user, 0o700); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(user, "jobcast.db")
	if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	removed, err := freshDemoDir(user)
	if err != nil || removed {
		t.Fatalf("unmarked dir: removed %v, err %v; want kept", removed, err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("unmarked dir lost its file: %v", err)
	}

	// The first run creates and marks a new dir; the next one empties it.
	dir := filepath.Join(root, "demo")
	if removed, err := freshDemoDir(dir); err != nil || removed {
		t.Fatalf("first run: removed %v, err %v", removed, err)
	}
	old := filepath.Join(dir, "telemetry.duckdb")
	conf := filepath.Join(dir, "alerts.yaml")
	for _, f := range []string{old, filepath.Join(dir, "jobcast.db-wal"), conf} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if removed, err := freshDemoDir(dir); err != nil || !removed {
		t.Fatalf("second run: removed %v, err %v; want removed", removed, err)
	}
	for _, f := range []string{old, filepath.Join(dir, "jobcast.db-wal")} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Fatalf("the previous run's %s is still there: %v", filepath.Base(f), err)
		}
	}
	if _, err := os.Stat(conf); err != nil {
		t.Fatalf("the user's alerts.yaml was removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, demoMarker)); err != nil {
		t.Fatalf("the new run's dir is not marked: %v", err)
	}
}
