package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writePages commits n rows of about one page each through the writer,
// 50 to a transaction.
func writePages(t *testing.T, db *DB, from, n int) {
	t.Helper()
	blob := strings.Repeat("x", 3500)
	for i := from; i < from+n; i += 50 {
		tx, err := db.write.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for j := i; j < min(i+50, from+n); j++ {
			if _, err := tx.Exec(`INSERT INTO messages (job_id, seq, data) VALUES ('job', ?, ?)`, j, blob); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// The writer never checkpoints (its commits do not wait for fsyncs); a
// checkpoint on the checkpointer's connection copies the whole WAL, and
// the WAL starts over after it instead of growing.
func TestCheckpointOffTheWriter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "jobcast.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var auto int
	if err := db.write.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&auto); err != nil {
		t.Fatal(err)
	}
	if auto != 0 {
		t.Fatalf("writer's wal_autocheckpoint = %d, want 0", auto)
	}
	var first int
	for round := range 2 {
		writePages(t, db, round*1200, 1200)
		wal, done, err := db.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// 1,200 rows are at least 1,200 pages; SQLite's own checkpoint
		// would have started the WAL over at 1,000. The second round
		// reuses the WAL from its start: about as long as the first, not
		// twice as long.
		if wal < 1200 || done != wal || (round == 1 && wal > first*3/2) {
			t.Errorf("round %d: WAL %d pages, %d checkpointed; want ≥ 1,200, all, round 1 about round 0's %d", round, wal, done, first)
		}
		first = wal
	}
}

// The background checkpointer copies the WAL into the database file
// without anyone asking, about once per CheckpointInterval.
func TestBackgroundCheckpoint(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "jobcast.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	writePages(t, db, 0, 300)
	deadline := time.Now().Add(10 * CheckpointInterval)
	for {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() >= before.Size()+300*4096 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("database file %d bytes after %v (was %d): the WAL was not checkpointed", fi.Size(), 10*CheckpointInterval, before.Size())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
