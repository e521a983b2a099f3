package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/storetest"
	"github.com/jobcast/jobcast/protocol"
	"github.com/jobcast/jobcast/sqlite"
)

func TestJobStore(t *testing.T) {
	t.Parallel()
	storetest.RunJobStoreTests(t, func(t *testing.T) jobcast.JobStore {
		t.Helper()
		s, err := sqlite.OpenJobStore(context.Background(), filepath.Join(t.TempDir(), "jobcast.db"))
		if err != nil {
			t.Fatalf("OpenJobStore: %v", err)
		}
		return s
	})
}

func open(t *testing.T, path string) *sqlite.JobStore {
	t.Helper()
	s, err := sqlite.OpenJobStore(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenJobStore(%s): %v", path, err)
	}
	return s
}

func TestReopenKeepsJobsAndLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A data dir that does not exist yet is created.
	path := filepath.Join(t.TempDir(), "data", "jobcast.db")
	now := time.Date(2025, 11, 26, 5, 0, 0, 0, time.UTC)

	s := open(t, path)
	job := &jobcast.Job{JobState: protocol.JobState{
		JobID: "job-persist", Pipeline: "ai_scan", Status: protocol.StatusPending,
		Metadata: json.RawMessage(`{"k":"v"}`), CreatedAt: now, UpdatedAt: now,
	}}
	if err := s.CreateJob(ctx, job); err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	events, err := protocol.ParseProducerEvents([]byte(`[
		{"type":"started","payload":{"totalCount":3}},
		{"type":"progress","payload":{"processedCount":2}},
		{"type":"error","payload":{"code":"E_GEMINI_TIMEOUT"}}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	prev := job.Rev
	msgs, err := jobcast.ApplyEvents(job, events, jobcast.NewCatalog(nil), now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateJob(ctx, job, prev, msgs); err != nil {
		t.Fatalf("UpdateJob: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, path)
	t.Cleanup(func() { s.Close() })
	got, err := s.GetJob(ctx, "job-persist")
	if err != nil {
		t.Fatalf("GetJob after reopen: %v", err)
	}
	if got.Rev != job.Rev || got.Status != protocol.StatusRunning || got.Seq != 3 || got.ProcessedCount != 2 || got.TotalCount != 3 ||
		got.LastError == nil || got.LastError.Code != "E_GEMINI_TIMEOUT" || got.LastProgress == nil || got.LastProgress.Seq != 2 ||
		string(got.Metadata) != `{"k":"v"}` {
		t.Fatalf("job after reopen: rev %d %+v lastProgress %+v", got.Rev, got.JobState, got.LastProgress)
	}
	logged, err := s.Messages(ctx, "job-persist", 0)
	if err != nil {
		t.Fatalf("Messages after reopen: %v", err)
	}
	if len(logged) != 2 || logged[0].Seq != 1 || logged[0].Type != protocol.TypeJobStarted || logged[1].Seq != 3 || logged[1].Type != protocol.TypeError {
		t.Fatalf("message log after reopen: %+v", logged)
	}
	// The reopened store keeps working from the stored revision.
	prev = got.Rev
	msgs, err = jobcast.ApplyEvents(got, []protocol.ProducerEvent{{Type: protocol.EventCompleted, Payload: json.RawMessage(`{}`)}}, jobcast.NewCatalog(nil), now.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateJob(ctx, got, prev, msgs); err != nil {
		t.Fatalf("UpdateJob after reopen: %v", err)
	}
}

func TestOpenNewerSchemaFails(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "jobcast.db")
	s := open(t, path)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A later jobcast migrated this file further.
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.OpenJobStore(context.Background(), path)
	if err == nil {
		s.Close()
		t.Fatal("OpenJobStore on a newer schema succeeded")
	}
	if want := "has schema version 99, newer than this jobcast (1)"; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
		t.Fatalf("OpenJobStore error %q, want it to name %s and contain %q", err, path, want)
	}
}

func TestOpenPathWithURICharacters(t *testing.T) {
	t.Parallel()
	// A data dir may contain characters that mean something in a SQLite
	// URI: '?', '#', '%' and spaces.
	for _, name := range []string{"plain", "with space", "hash#dir", "percent%41dir", "question?dir"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), name)
			path := filepath.Join(dir, "jobcast.db")
			s := open(t, path)
			job := &jobcast.Job{JobState: protocol.JobState{JobID: "j", Pipeline: "p", Status: protocol.StatusPending}}
			if err := s.CreateJob(context.Background(), job); err != nil {
				t.Fatalf("CreateJob: %v", err)
			}
			if _, err := s.GetJob(context.Background(), "j"); err != nil {
				t.Fatalf("GetJob: %v", err)
			}
			// The pragmas after the path took effect: WAL mode keeps a
			// -wal file beside the database while it is open.
			if _, err := os.Stat(path + "-wal"); err != nil {
				t.Fatalf("no WAL file beside %s: %v", path, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("database not at %s: %v", path, err)
			}
		})
	}
}

func TestOpenFailsOnNonDatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "jobcast.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.OpenJobStore(context.Background(), path)
	if err == nil {
		s.Close()
		t.Fatal("OpenJobStore on a non-database file succeeded")
	}
	if errors.Is(err, jobcast.ErrJobNotFound) {
		t.Fatalf("unexpected error %v", err)
	}
}

// TestUpdateProgressOnly covers updates that log nothing (progress only),
// which run without an explicit transaction: they commit the record, and a
// stale revision or a missing job fails as a logging update does and leaves
// the job's revision as it was.
func TestUpdateProgressOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2025, 11, 26, 5, 0, 0, 0, time.UTC)
	s := open(t, filepath.Join(t.TempDir(), "jobcast.db"))
	defer s.Close()
	newJob := func(id string) *jobcast.Job {
		return &jobcast.Job{JobState: protocol.JobState{JobID: id, Pipeline: "p", Status: protocol.StatusPending, CreatedAt: now, UpdatedAt: now}}
	}
	progress := func(t *testing.T, job *jobcast.Job, n int) []*jobcast.Message {
		t.Helper()
		events, err := protocol.ParseProducerEvents([]byte(`[{"type":"progress","payload":{"processedCount":` + strconv.Itoa(n) + `}}]`))
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := jobcast.ApplyEvents(job, events, jobcast.NewCatalog(nil), now)
		if err != nil {
			t.Fatal(err)
		}
		return msgs
	}
	if err := s.CreateJob(ctx, newJob("j")); err != nil {
		t.Fatal(err)
	}
	a, err := s.GetJob(ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.GetJob(ctx, "j")
	prev := a.Rev
	if err := s.UpdateJob(ctx, a, prev, progress(t, a, 5)); err != nil {
		t.Fatalf("UpdateJob: %v", err)
	}
	got, err := s.GetJob(ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	if got.Rev != prev+1 || got.ProcessedCount != 5 || got.LastProgress == nil || got.LastProgress.Seq != 1 {
		t.Fatalf("after a progress update: rev %d, processed %d, last progress %+v", got.Rev, got.ProcessedCount, got.LastProgress)
	}
	if err := s.UpdateJob(ctx, b, prev, progress(t, b, 7)); !errors.Is(err, jobcast.ErrConflict) {
		t.Fatalf("progress update with a stale rev = %v, want ErrConflict", err)
	}
	if b.Rev != prev {
		t.Fatalf("a failed update left rev %d, want %d", b.Rev, prev)
	}
	ghost := newJob("ghost")
	if err := s.UpdateJob(ctx, ghost, 1, progress(t, ghost, 1)); !errors.Is(err, jobcast.ErrJobNotFound) {
		t.Fatalf("progress update of a missing job = %v, want ErrJobNotFound", err)
	}
	if logged, err := s.Messages(ctx, "j", 0); err != nil || len(logged) != 0 {
		t.Fatalf("progress was logged: %v, %v", logged, err)
	}
}
