package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/internal/storetest"
	"github.com/jobcast/jobcast/internal/syncbuf"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/protocol"
)

// outageStore refuses writes with E_UNAVAILABLE while down, as the SQLite
// store does on a full disk; reads keep working, as they do there.
type outageStore struct {
	jobcast.JobStore
	down     atomic.Bool
	attempts atomic.Int64 // writes tried while down
}

var errDiskFull = fmt.Errorf("%w: %w", jobcast.Errorf(protocol.ErrUnavailable, "the job store cannot write right now; retry shortly"),
	errors.New("commit: database or disk is full (13)"))

func (s *outageStore) refuse() error {
	if s.down.Load() {
		s.attempts.Add(1)
		return errDiskFull
	}
	return nil
}

func (s *outageStore) CreateJob(ctx context.Context, job *jobcast.Job) error {
	if err := s.refuse(); err != nil {
		return err
	}
	return s.JobStore.CreateJob(ctx, job)
}

func (s *outageStore) UpdateJob(ctx context.Context, job *jobcast.Job, prevRev int64, msgs []*jobcast.Message) error {
	if err := s.refuse(); err != nil {
		return err
	}
	return s.JobStore.UpdateJob(ctx, job, prevRev, msgs)
}

func (s *outageStore) DeleteFinishedBefore(ctx context.Context, t time.Time) (int, error) {
	if err := s.refuse(); err != nil {
		return 0, err
	}
	return s.JobStore.DeleteFinishedBefore(ctx, t)
}

// spoolFixture is a job service over CachedStore(Spool(outageStore(inmem))),
// as a node runs it, on a manual clock.
type spoolFixture struct {
	*fixture
	inner  *inmem.JobStore
	outage *outageStore
	spool  *jobs.Spool
	logs   *syncbuf.Buffer
}

func newSpoolFixture(t *testing.T, opt jobs.SpoolOptions) *spoolFixture {
	t.Helper()
	f := &spoolFixture{inner: inmem.NewJobStore(), logs: &syncbuf.Buffer{}}
	f.outage = &outageStore{JobStore: f.inner}
	f.fixture = &fixture{broker: inmem.NewBroker(), clock: clocktest.New(t0)}
	opt.Clock = f.clock
	opt.Log = slog.New(slog.NewTextHandler(f.logs, nil))
	f.spool = jobs.NewSpool(f.outage, opt)
	f.store = jobs.NewCachedStore(f.spool, 0)
	t.Cleanup(func() { f.store.Close() })
	f.svc = jobs.New(f.store, f.broker, jobcast.NewCatalog(nil), f.clock, discardLog())
	return f
}

func (f *spoolFixture) tryAppend(id, body string) (*jobcast.Job, error) {
	events, err := protocol.ParseProducerEvents([]byte(body))
	if err != nil {
		return nil, err
	}
	job, _, err := f.svc.Append(context.Background(), id, events)
	return job, err
}

// innerLog is the seqs and types of the job's message log in the store
// beneath the spool.
func (f *spoolFixture) innerLog(t *testing.T, id string) string {
	t.Helper()
	msgs, err := f.inner.Messages(context.Background(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	return envSeqs(msgs)
}

func envSeqs(msgs []protocol.Envelope) string {
	var b strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&b, "%d:%s ", m.Seq, m.Type)
	}
	return strings.TrimSpace(b.String())
}

// While the store refuses writes, events are accepted, applied, published
// and readable (state and log), but not durable; once it takes writes
// again, the flusher writes them in order and logs once how many.
func TestSpoolDeliversDuringOutageAndFlushesInOrder(t *testing.T) {
	t.Parallel()
	f := newSpoolFixture(t, jobs.SpoolOptions{})
	ctx := context.Background()
	f.create(t, "j1")
	f.append(t, "j1", `{"type":"started","payload":{"totalCount":10}}`)
	w := f.watch(t, "j1", nil)

	f.outage.down.Store(true)
	f.append(t, "j1", `[{"type":"progress","payload":{"processedCount":3}},{"type":"error","payload":{"code":"E_GEMINI_TIMEOUT"}}]`)
	job, err := f.tryAppend("j1", `{"type":"progress","payload":{"processedCount":5}}`)
	if err != nil {
		t.Fatalf("append during the outage: %v", err)
	}
	if f.svc.Durable(job) || job.Seq != 4 || job.Rev != 4 {
		t.Fatalf("accepted during the outage: durable %v, seq %d, rev %d", f.svc.Durable(job), job.Seq, job.Rev)
	}
	if got := seqsOf(w); fmt.Sprint(got) != "[2 3 4]" {
		t.Fatalf("published during the outage: %v, want [2 3 4]", got)
	}
	got, err := f.store.GetJob(ctx, "j1")
	if err != nil || got.Seq != 4 || got.ProcessedCount != 5 || got.LastError == nil || got.LastProgress.Seq != 4 {
		t.Fatalf("GetJob during the outage: %+v %v", got, err)
	}
	// A resume after seq 1 replays the queued error (and the latest
	// progress, from the record).
	logged, err := f.store.Messages(ctx, "j1", 1)
	if err != nil || envSeqs(logged) != "3:error" {
		t.Fatalf("Messages after 1 during the outage: %q %v", envSeqs(logged), err)
	}
	if all, _ := f.store.Messages(ctx, "j1", 0); envSeqs(all) != "1:job_started 3:error" {
		t.Fatalf("Messages after 0 during the outage: %q", envSeqs(all))
	}
	if log := f.innerLog(t, "j1"); log != "1:job_started" {
		t.Fatalf("the store has %q during the outage", log)
	}
	if st := f.spool.Stats(); st.Queued != 2 || st.QueuedBytes <= 0 || st.FlushedLate != 0 {
		t.Fatalf("stats during the outage: %+v", st)
	}
	if !strings.Contains(f.logs.String(), "database or disk is full") {
		t.Errorf("the outage's start is not logged with its cause:\n%s", f.logs)
	}

	// The store is back, but j1 has queued writes: its next one queues
	// behind them, or the store would get seq 5 before 2..4.
	f.outage.down.Store(false)
	job, err = f.tryAppend("j1", `{"type":"completed","payload":{"successCount":10}}`)
	if err != nil || f.svc.Durable(job) {
		t.Fatalf("append after the outage with writes queued: durable %v, %v", job != nil && f.svc.Durable(job), err)
	}
	if log := f.innerLog(t, "j1"); log != "1:job_started" {
		t.Fatalf("a write overtook the queue: the store has %q", log)
	}
	f.clock.Advance(250 * time.Millisecond)
	if st := f.spool.Stats(); st.Queued != 0 || st.QueuedBytes != 0 || st.FlushedLate != 3 {
		t.Fatalf("stats after the flush: %+v", st)
	}
	if log := f.innerLog(t, "j1"); log != "1:job_started 3:error 5:job_completed" {
		t.Fatalf("the store's log after the flush: %q", log)
	}
	stored, err := f.inner.GetJob(ctx, "j1")
	if err != nil || stored.Status != protocol.StatusCompleted || stored.Seq != 5 || stored.Rev != 5 || stored.FinishedAt.IsZero() {
		t.Fatalf("the stored job after the flush: %+v %v", stored, err)
	}
	if !f.svc.Durable(job) {
		t.Fatal("the flushed revision is not durable")
	}
	if n := strings.Count(f.logs.String(), "takes writes again"); n != 1 || !strings.Contains(f.logs.String(), "written=3") {
		t.Errorf("recovery logged %d times:\n%s", n, f.logs)
	}
	// Events after the queued terminal one were refused all along.
	if _, err := f.tryAppend("j1", `{"type":"progress","payload":{"processedCount":1}}`); jobcast.ErrorCode(err) != protocol.ErrJobFinished {
		t.Fatalf("append after the terminal event: %v", err)
	}
	// And writes go straight to the store again.
	f.create(t, "j2")
	if job := f.append(t, "j2", `{"type":"started"}`); len(job) != 1 || f.innerLog(t, "j2") != "1:job_started" {
		t.Fatalf("a write after recovery did not reach the store: %q", f.innerLog(t, "j2"))
	}
}

// A terminal event during the outage is delivered, ends the job for later
// events, and is stored by the flush; a job created during the outage is
// queued too, and its id is checked against the store.
func TestSpoolCreateAndTerminalDuringOutage(t *testing.T) {
	t.Parallel()
	f := newSpoolFixture(t, jobs.SpoolOptions{})
	ctx := context.Background()
	f.create(t, "old")
	f.outage.down.Store(true)

	job, err := f.svc.Create(ctx, jobs.CreateRequest{JobID: "new", Pipeline: "csv_import", TotalCount: 2})
	if err != nil || f.svc.Durable(job) || job.Rev != 1 {
		t.Fatalf("Create during the outage: %+v %v", job, err)
	}
	for _, id := range []string{"new", "old"} {
		if _, err := f.svc.Create(ctx, jobs.CreateRequest{JobID: id, Pipeline: "csv_import"}); !errors.Is(err, jobcast.ErrJobExists) {
			t.Fatalf("Create(%s) again during the outage: %v, want E_JOB_EXISTS", id, err)
		}
	}
	w := f.watch(t, "new", nil)
	f.append(t, "new", `[{"type":"started"},{"type":"failed","payload":{"code":"E_ENRICHMENT_FAILED"}}]`)
	if got := seqsOf(w); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("published: %v", got)
	}
	if _, err := f.tryAppend("new", `{"type":"started"}`); jobcast.ErrorCode(err) != protocol.ErrJobFinished {
		t.Fatalf("append after the queued terminal event: %v", err)
	}
	if _, err := f.inner.GetJob(ctx, "new"); !errors.Is(err, jobcast.ErrJobNotFound) {
		t.Fatalf("the store has the job during the outage: %v", err)
	}
	if logged, err := f.store.Messages(ctx, "new", 0); err != nil || envSeqs(logged) != "1:job_started 2:job_failed" {
		t.Fatalf("Messages of the queued job: %q %v", envSeqs(logged), err)
	}

	f.outage.down.Store(false)
	f.clock.Advance(250 * time.Millisecond)
	stored, err := f.inner.GetJob(ctx, "new")
	if err != nil || stored.Status != protocol.StatusFailed || stored.Rev != 2 || stored.TotalCount != 2 {
		t.Fatalf("the stored job after the flush: %+v %v", stored, err)
	}
	if log := f.innerLog(t, "new"); log != "1:job_started 2:job_failed" {
		t.Fatalf("the store's log after the flush: %q", log)
	}
}

// Past its bound the spool refuses with E_UNAVAILABLE, as the store did,
// and the job is left as it was.
func TestSpoolBound(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opt  jobs.SpoolOptions
	}{
		{name: "writes", opt: jobs.SpoolOptions{MaxWrites: 3}},
		{name: "bytes", opt: jobs.SpoolOptions{MaxBytes: 3 * 700}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newSpoolFixture(t, tt.opt)
			f.create(t, "j")
			f.outage.down.Store(true)
			for i := range 3 {
				if _, err := f.tryAppend("j", `{"type":"progress","payload":{"processedCount":`+fmt.Sprint(i)+`}}`); err != nil {
					t.Fatalf("append %d: %v", i, err)
				}
			}
			_, err := f.tryAppend("j", `{"type":"error","payload":{"code":"E_X"}}`)
			if jobcast.ErrorCode(err) != protocol.ErrUnavailable || !strings.Contains(jobcast.ErrorMessage(err), "3 writes already wait in memory") ||
				!strings.Contains(err.Error(), "disk is full") {
				t.Fatalf("append beyond the bound: %v", err)
			}
			job, err := f.store.GetJob(context.Background(), "j")
			if err != nil || job.Seq != 3 || job.LastError != nil {
				t.Fatalf("job after the refused append: %+v %v", job, err)
			}
			if st := f.spool.Stats(); st.Queued != 3 || st.Refused != 1 {
				t.Fatalf("stats: %+v", st)
			}
			// Once flushed, there is room again.
			f.outage.down.Store(false)
			f.clock.Advance(250 * time.Millisecond)
			if _, err := f.tryAppend("j", `{"type":"error","payload":{"code":"E_X"}}`); err != nil {
				t.Fatalf("append after the flush: %v", err)
			}
		})
	}
}

// The flusher retries with backoff on the injected clock: 250 ms, then
// doubling to 5 s, and starts from 250 ms again after a flush.
func TestSpoolFlusherBackoff(t *testing.T) {
	t.Parallel()
	f := newSpoolFixture(t, jobs.SpoolOptions{})
	f.create(t, "j")
	f.outage.down.Store(true)
	f.append(t, "j", `{"type":"started"}`) // attempt 1: the store refuses
	steps := []struct {
		advance  time.Duration
		attempts int64
	}{
		{249 * time.Millisecond, 1},
		{time.Millisecond, 2},        // 250 ms
		{499 * time.Millisecond, 2},  //
		{time.Millisecond, 3},        // +500 ms
		{time.Second, 4},             // +1 s
		{2 * time.Second, 5},         // +2 s
		{4 * time.Second, 6},         // +4 s
		{5 * time.Second, 7},         // +5 s: the cap
		{5 * time.Second, 8},         //
		{4999 * time.Millisecond, 8}, //
	}
	for i, s := range steps {
		f.clock.Advance(s.advance)
		if got := f.outage.attempts.Load(); got != s.attempts {
			t.Fatalf("step %d (+%v): %d store attempts, want %d", i, s.advance, got, s.attempts)
		}
	}
	f.outage.down.Store(false)
	f.clock.Advance(time.Millisecond)
	if st := f.spool.Stats(); st.Queued != 0 || st.FlushedLate != 1 {
		t.Fatalf("after the store came back: %+v", st)
	}
	if f.clock.Pending() != 0 {
		t.Fatalf("%d timers armed with nothing queued", f.clock.Pending())
	}
	f.outage.down.Store(true)
	f.append(t, "j", `{"type":"progress","payload":{"processedCount":1}}`) // attempt 9
	f.clock.Advance(250 * time.Millisecond)
	if got := f.outage.attempts.Load(); got != 10 {
		t.Fatalf("a new outage retried after 250 ms %d times, want 10", got)
	}
}

// A queued write the store rejects for good (its job was deleted
// meanwhile) is dropped and logged, and does not block other jobs.
func TestSpoolDropsRejectedWrites(t *testing.T) {
	t.Parallel()
	f := newSpoolFixture(t, jobs.SpoolOptions{})
	ctx := context.Background()
	f.create(t, "gone")
	f.create(t, "kept")
	f.outage.down.Store(true)
	f.append(t, "gone", `{"type":"started"}`)
	f.append(t, "kept", `{"type":"started"}`)
	f.outage.down.Store(false)
	if _, err := f.inner.DeleteFinishedBefore(ctx, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Delete "gone" from the store the way retention would after it
	// finished: here by completing it underneath and sweeping.
	job, _ := f.inner.GetJob(ctx, "gone")
	job.Status, job.FinishedAt = protocol.StatusCompleted, t0
	if err := f.inner.UpdateJob(ctx, job, job.Rev, nil); err != nil {
		t.Fatal(err)
	}
	if n, err := f.inner.DeleteFinishedBefore(ctx, t0.Add(time.Hour)); n != 1 || err != nil {
		t.Fatalf("delete: %d %v", n, err)
	}
	f.clock.Advance(250 * time.Millisecond)
	st := f.spool.Stats()
	if st.Queued != 0 || st.Dropped != 1 || st.FlushedLate != 1 {
		t.Fatalf("stats: %+v", st)
	}
	if f.innerLog(t, "kept") != "1:job_started" {
		t.Fatalf("the other job's write: %q", f.innerLog(t, "kept"))
	}
	if !strings.Contains(f.logs.String(), "is lost") {
		t.Errorf("the dropped write is not logged:\n%s", f.logs)
	}
}

// Close writes what it can; what the store still refuses is logged as
// lost.
func TestSpoolClose(t *testing.T) {
	t.Parallel()
	for _, down := range []bool{false, true} {
		t.Run(fmt.Sprintf("store down %v", down), func(t *testing.T) {
			t.Parallel()
			f := newSpoolFixture(t, jobs.SpoolOptions{})
			f.create(t, "j")
			f.outage.down.Store(true)
			f.append(t, "j", `{"type":"started"}`)
			f.outage.down.Store(down)
			if err := f.spool.Close(); err != nil {
				t.Fatal(err)
			}
			if err := f.spool.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			lost := strings.Contains(f.logs.String(), "they are lost")
			if lost != down {
				t.Fatalf("lost logged %v with the store down %v:\n%s", lost, down, f.logs)
			}
			if f.clock.Pending() != 0 {
				t.Fatalf("%d timers armed after Close", f.clock.Pending())
			}
		})
	}
}

// TestSpoolConformance runs the job store contract over the spool, alone
// and under the cache, with the store healthy.
func TestSpoolConformance(t *testing.T) {
	t.Parallel()
	t.Run("spool", func(t *testing.T) {
		t.Parallel()
		storetest.RunJobStoreTests(t, func(t *testing.T) jobcast.JobStore {
			return jobs.NewSpool(inmem.NewJobStore(), jobs.SpoolOptions{})
		})
	})
	t.Run("cached spool", func(t *testing.T) {
		t.Parallel()
		storetest.RunJobStoreTests(t, func(t *testing.T) jobcast.JobStore {
			return jobs.NewCachedStore(jobs.NewSpool(inmem.NewJobStore(), jobs.SpoolOptions{}), 0)
		})
	})
}

func seqsOf(w *watch) []int64 {
	var out []int64
	for _, m := range w.got() {
		out = append(out, m.Seq)
	}
	return out
}
