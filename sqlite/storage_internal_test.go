package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

// A store that cannot grow (here: SQLite's max_page_count, as a full disk
// looks to it) refuses writes with E_UNAVAILABLE, whose message says
// nothing of SQLite while the chain keeps its text for the log, and
// accepts them again once it can grow.
func TestFullStoreIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := OpenJobStore(ctx, filepath.Join(t.TempDir(), "jobcast.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var pages int64
	if err := s.db.write.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	// The write pool has one connection, so the pragma sticks.
	if _, err := s.db.write.ExecContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}
	meta, _ := json.Marshal(map[string]string{"blob": strings.Repeat("m", 64<<10)})
	job := func(id string) *jobcast.Job {
		return &jobcast.Job{JobState: protocol.JobState{JobID: id, Pipeline: "p", Status: protocol.StatusPending, Metadata: meta}}
	}
	err = s.CreateJob(ctx, job("full"))
	if jobcast.ErrorCode(err) != protocol.ErrUnavailable || strings.Contains(jobcast.ErrorMessage(err), "SQLITE") ||
		!strings.Contains(err.Error(), "full") {
		t.Fatalf("CreateJob on a full store: code %s, message %q, error %v", jobcast.ErrorCode(err), jobcast.ErrorMessage(err), err)
	}
	if _, err := s.db.write.ExecContext(ctx, `PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateJob(ctx, job("after")); err != nil {
		t.Fatalf("CreateJob once the store can grow: %v", err)
	}
	// Other failures keep their own code.
	if err := s.CreateJob(ctx, job("after")); jobcast.ErrorCode(err) != protocol.ErrJobExists {
		t.Errorf("duplicate job: %v, want E_JOB_EXISTS", err)
	}
}
