package sqlite

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/protocol"
)

// The jobs spool over the real SQLite store: a database that cannot grow
// (max_page_count, as a full disk looks to SQLite) refuses writes; the
// events are applied and published anyway, and readable through the spool;
// once it can grow, the flusher writes them, and a fresh store on the same
// file has every message in seq order.
func TestSpoolOverFullStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "jobcast.db")
	s, err := OpenJobStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	clock := clocktest.New(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	spool := jobs.NewSpool(s, jobs.SpoolOptions{Clock: clock})
	store := jobs.NewCachedStore(spool, 0)
	defer store.Close()
	broker := inmem.NewBroker()
	svc := jobs.New(store, broker, jobcast.NewCatalog(nil), clock, slog.New(slog.DiscardHandler))
	var published []int64
	cancel, err := broker.Subscribe("full", func(m *jobcast.Message) { published = append(published, m.Seq) })
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	if _, err := svc.Create(ctx, jobs.CreateRequest{JobID: "full", Pipeline: "csv_import"}); err != nil {
		t.Fatal(err)
	}
	var pages int64
	if err := s.db.write.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.write.ExecContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}

	// Errors of 1,000 bytes until the database is full, then three more.
	var logged []int64 // the seqs of the job's message log, in order
	queued := 0
	for i := 0; queued < 3; i++ {
		if i > 500 {
			t.Fatal("500 events fit in a database that cannot grow")
		}
		events := []protocol.ProducerEvent{
			{Type: protocol.EventProgress, Payload: []byte(fmt.Sprintf(`{"processedCount":%d}`, i))},
			{Type: protocol.EventError, Payload: []byte(`{"code":"E_FULL_TEST","message":"` + strings.Repeat("x", 1000) + `"}`)},
		}
		job, _, err := svc.Append(ctx, "full", events)
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		logged = append(logged, job.Seq)
		if !svc.Durable(job) {
			queued++
		}
	}
	want := fmt.Sprint(logged)
	if len(published) != 2*len(logged) || published[len(published)-1] != logged[len(logged)-1] {
		t.Fatalf("published %d messages, last %d; want %d, last %d", len(published), published[len(published)-1], 2*len(logged), logged[len(logged)-1])
	}
	seqs := func(st jobcast.JobStore) string {
		t.Helper()
		msgs, err := st.Messages(ctx, "full", 0)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]int64, len(msgs))
		for i, m := range msgs {
			out[i] = m.Seq
		}
		return fmt.Sprint(out)
	}
	if got := seqs(store); got != want {
		t.Fatalf("the log through the spool while full:\n%s\nwant\n%s", got, want)
	}
	if got := seqs(s); got == want {
		t.Fatal("SQLite has every message although it was full")
	}
	if st := spool.Stats(); st.Queued != 3 {
		t.Fatalf("spool while full: %+v", st)
	}
	// Still full: the flusher's attempt fails and keeps the queue.
	clock.Advance(250 * time.Millisecond)
	if st := spool.Stats(); st.Queued != 3 || st.FlushedLate != 0 {
		t.Fatalf("spool after a flush on a full database: %+v", st)
	}

	if _, err := s.db.write.ExecContext(ctx, `PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	clock.Advance(500 * time.Millisecond)
	if st := spool.Stats(); st.Queued != 0 || st.FlushedLate != 3 {
		t.Fatalf("spool after space returned: %+v", st)
	}
	if got := seqs(s); got != want {
		t.Fatalf("SQLite's log after the flush:\n%s\nwant\n%s", got, want)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	fresh, err := OpenJobStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if got := seqs(fresh); got != want {
		t.Fatalf("a fresh store's log:\n%s\nwant\n%s", got, want)
	}
	job, err := fresh.GetJob(ctx, "full")
	if err != nil || job.Seq != logged[len(logged)-1] || job.LastProgress == nil || job.LastProgress.Seq != job.Seq-1 {
		t.Fatalf("a fresh store's job: %+v %v", job, err)
	}
}
