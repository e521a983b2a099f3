package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/protocol"
)

var t0 = time.Date(2025, 11, 26, 5, 0, 0, 0, time.UTC)

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type fixture struct {
	svc    *jobs.Service
	store  jobcast.JobStore
	broker *inmem.Broker
	clock  *clocktest.Clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	store := inmem.NewJobStore()
	t.Cleanup(func() { store.Close() })
	f := &fixture{store: store, broker: inmem.NewBroker(), clock: clocktest.New(t0)}
	f.svc = jobs.New(f.store, f.broker, jobcast.NewCatalog(nil), f.clock, discardLog())
	return f
}

func (f *fixture) create(t *testing.T, id string) *jobcast.Job {
	t.Helper()
	job, err := f.svc.Create(context.Background(), jobs.CreateRequest{JobID: id, Pipeline: "csv_import"})
	if err != nil {
		t.Fatalf("Create(%s): %v", id, err)
	}
	return job
}

func (f *fixture) append(t *testing.T, id, body string) []*jobcast.Message {
	t.Helper()
	events, err := protocol.ParseProducerEvents([]byte(body))
	if err != nil {
		t.Fatalf("ParseProducerEvents: %v", err)
	}
	_, msgs, err := f.svc.Append(context.Background(), id, events)
	if err != nil {
		t.Fatalf("Append(%s): %v", id, err)
	}
	return msgs
}

func (f *fixture) stored(t *testing.T, id string) *jobcast.Job {
	t.Helper()
	job, err := f.store.GetJob(context.Background(), id)
	if err != nil {
		t.Fatalf("GetJob(%s): %v", id, err)
	}
	return job
}

// watch records every message the broker publishes for jobID.
type watch struct {
	mu   sync.Mutex
	msgs []*jobcast.Message
}

func (f *fixture) watch(t *testing.T, jobID string, also func(*jobcast.Message)) *watch {
	t.Helper()
	w := &watch{}
	cancel, err := f.broker.Subscribe(jobID, func(m *jobcast.Message) {
		if also != nil {
			also(m)
		}
		w.mu.Lock()
		w.msgs = append(w.msgs, m)
		w.mu.Unlock()
	})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	t.Cleanup(cancel)
	return w
}

func (w *watch) got() []*jobcast.Message {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*jobcast.Message(nil), w.msgs...)
}

func wantCode(t *testing.T, err error, code, msgPart string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	if got := jobcast.ErrorCode(err); got != code {
		t.Fatalf("error %v has code %s, want %s", err, got, code)
	}
	if !strings.Contains(jobcast.ErrorMessage(err), msgPart) {
		t.Fatalf("message %q does not contain %q", jobcast.ErrorMessage(err), msgPart)
	}
}

func TestCreateValidation(t *testing.T) {
	t.Parallel()
	bigMeta := `{"x":"` + strings.Repeat("m", protocol.MaxMetadataBytes-8) + `"}` // 8192 bytes
	tests := []struct {
		name     string
		req      jobs.CreateRequest
		wantCode string // "" = valid
		wantMsg  string
	}{
		{name: "minimal", req: jobs.CreateRequest{Pipeline: "csv_import"}},
		{name: "all fields", req: jobs.CreateRequest{JobID: "job:2025.11_26-a", Pipeline: "ai.scan-v2", TotalCount: 500, Metadata: json.RawMessage(`{"source":"upload"}`)}},
		{name: "longest pipeline", req: jobs.CreateRequest{Pipeline: strings.Repeat("p", 64)}},
		{name: "longest jobId", req: jobs.CreateRequest{JobID: strings.Repeat("j", 128), Pipeline: "p"}},
		{name: "null metadata", req: jobs.CreateRequest{Pipeline: "p", Metadata: json.RawMessage(`null`)}},
		{name: "metadata with surrounding space", req: jobs.CreateRequest{Pipeline: "p", Metadata: json.RawMessage(" {\"a\":1}\n")}},
		{name: "metadata at the limit", req: jobs.CreateRequest{Pipeline: "p", Metadata: json.RawMessage(bigMeta)}},
		{name: "pipeline missing", req: jobs.CreateRequest{}, wantCode: protocol.ErrBadRequest, wantMsg: "pipeline is required: 1-64 characters of letters, digits, '_', '-' or '.'"},
		{name: "pipeline with a space", req: jobs.CreateRequest{Pipeline: "csv import"}, wantCode: protocol.ErrBadRequest, wantMsg: "pipeline is required"},
		{name: "pipeline with a colon", req: jobs.CreateRequest{Pipeline: "csv:import"}, wantCode: protocol.ErrBadRequest, wantMsg: "pipeline is required"},
		{name: "pipeline too long", req: jobs.CreateRequest{Pipeline: strings.Repeat("p", 65)}, wantCode: protocol.ErrBadRequest, wantMsg: "pipeline is required"},
		{name: "jobId with a slash", req: jobs.CreateRequest{JobID: "a/b", Pipeline: "p"}, wantCode: protocol.ErrBadRequest, wantMsg: "jobId must be 1-128 characters of letters, digits, '.', '_', ':' or '-'"},
		{name: "jobId with a space", req: jobs.CreateRequest{JobID: "a b", Pipeline: "p"}, wantCode: protocol.ErrBadRequest, wantMsg: "jobId must be"},
		{name: "jobId non-ASCII", req: jobs.CreateRequest{JobID: "jöb", Pipeline: "p"}, wantCode: protocol.ErrBadRequest, wantMsg: "jobId must be"},
		{name: "jobId too long", req: jobs.CreateRequest{JobID: strings.Repeat("j", 129), Pipeline: "p"}, wantCode: protocol.ErrBadRequest, wantMsg: "jobId must be"},
		{name: "negative totalCount", req: jobs.CreateRequest{Pipeline: "p", TotalCount: -1}, wantCode: protocol.ErrBadRequest, wantMsg: "totalCount must be >= 0"},
		{name: "metadata array", req: jobs.CreateRequest{Pipeline: "p", Metadata: json.RawMessage(`[1]`)}, wantCode: protocol.ErrBadRequest, wantMsg: "metadata must be a JSON object"},
		{name: "metadata string", req: jobs.CreateRequest{Pipeline: "p", Metadata: json.RawMessage(`"x"`)}, wantCode: protocol.ErrBadRequest, wantMsg: "metadata must be a JSON object"},
		{name: "metadata not JSON", req: jobs.CreateRequest{Pipeline: "p", Metadata: json.RawMessage(`{"a":`)}, wantCode: protocol.ErrBadRequest, wantMsg: "metadata must be a JSON object"},
		{name: "metadata number", req: jobs.CreateRequest{Pipeline: "p", Metadata: json.RawMessage(`5`)}, wantCode: protocol.ErrBadRequest, wantMsg: "metadata must be a JSON object"},
		{name: "metadata too big", req: jobs.CreateRequest{Pipeline: "p", Metadata: json.RawMessage(`{"x":"` + strings.Repeat("m", protocol.MaxMetadataBytes) + `"}`)}, wantCode: protocol.ErrTooLarge, wantMsg: "metadata of 8200 bytes exceeds 8192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if len(bigMeta) != protocol.MaxMetadataBytes {
				t.Fatalf("bigMeta is %d bytes", len(bigMeta))
			}
			job, err := f.svc.Create(context.Background(), tt.req)
			if tt.wantCode != "" {
				if job != nil {
					t.Fatalf("Create returned job %+v with error %v", job, err)
				}
				wantCode(t, err, tt.wantCode, tt.wantMsg)
				if tt.req.JobID != "" {
					if _, err := f.store.GetJob(context.Background(), tt.req.JobID); !errors.Is(err, jobcast.ErrJobNotFound) {
						t.Fatalf("a rejected job was stored (GetJob = %v)", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			got := f.stored(t, job.JobID)
			if got.Pipeline != tt.req.Pipeline || got.TotalCount != tt.req.TotalCount || got.Status != protocol.StatusPending || got.Seq != 0 {
				t.Fatalf("stored job %+v", got.JobState)
			}
			if tt.req.JobID != "" && got.JobID != tt.req.JobID {
				t.Fatalf("stored id %q, want %q", got.JobID, tt.req.JobID)
			}
			wantMeta := strings.TrimSpace(string(tt.req.Metadata))
			if wantMeta == "null" {
				wantMeta = ""
			}
			if string(got.Metadata) != wantMeta {
				t.Fatalf("stored metadata %.40s, want %.40s", got.Metadata, wantMeta)
			}
			if !got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(t0) || got.CreatedAt.Location() != time.UTC {
				t.Fatalf("created %v updated %v, want %v UTC", got.CreatedAt, got.UpdatedAt, t0)
			}
		})
	}
}

func TestCreateDuplicate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(t, "job-1")
	_, err := f.svc.Create(context.Background(), jobs.CreateRequest{JobID: "job-1", Pipeline: "other"})
	wantCode(t, err, protocol.ErrJobExists, "a job with this id already exists")
	if !errors.Is(err, jobcast.ErrJobExists) {
		t.Fatalf("error %v does not wrap ErrJobExists", err)
	}
	if jobcast.HTTPStatus(jobcast.ErrorCode(err)) != 409 {
		t.Fatal("duplicate job does not map to 409")
	}
	if got := f.stored(t, "job-1"); got.Pipeline != "csv_import" {
		t.Fatalf("duplicate create replaced the job (pipeline %q)", got.Pipeline)
	}
}

func TestGeneratedJobIDs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	re := regexp.MustCompile(fmt.Sprintf(`^job_%011x[0-9a-f]{16}$`, t0.UnixMilli()))
	seen := map[string]bool{}
	for range 200 {
		job, err := f.svc.Create(context.Background(), jobs.CreateRequest{Pipeline: "p"})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if !re.MatchString(job.JobID) {
			t.Fatalf("generated id %q does not match %s", job.JobID, re)
		}
		if seen[job.JobID] {
			t.Fatalf("generated id %q twice", job.JobID)
		}
		seen[job.JobID] = true
		// Generated ids are valid ids: they can be read back.
		if _, err := f.svc.Get(context.Background(), job.JobID); err != nil {
			t.Fatalf("Get(%s): %v", job.JobID, err)
		}
	}
	// Ids sort by creation time.
	a, _ := jobs.NewJobID(t0)
	b, _ := jobs.NewJobID(t0.Add(time.Millisecond))
	if a[:15] >= b[:15] {
		t.Fatalf("NewJobID(%v) = %s does not sort before NewJobID(+1ms) = %s", t0, a, b)
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(t, "job-1")
	if job, err := f.svc.Get(context.Background(), "job-1"); err != nil || job.JobID != "job-1" {
		t.Fatalf("Get = %v, %v", job, err)
	}
	for _, id := range []string{"job-2", "", "a/b", strings.Repeat("j", 129)} {
		if _, err := f.svc.Get(context.Background(), id); !errors.Is(err, jobcast.ErrJobNotFound) {
			t.Errorf("Get(%q) = %v, want ErrJobNotFound", id, err)
		}
	}
}

func TestAppendPersistsThenPublishes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(t, "job-1")
	f.create(t, "job-2")
	// Every subscriber callback checks that the whole batch is already
	// in the store when its messages are published.
	var storedAtPublish []int64
	w := f.watch(t, "job-1", func(m *jobcast.Message) {
		storedAtPublish = append(storedAtPublish, f.stored(t, "job-1").Seq)
	})
	other := f.watch(t, "job-2", nil)

	f.clock.Advance(1500 * time.Millisecond)
	msgs := f.append(t, "job-1", `[
		{"type":"started","payload":{"totalCount":3}},
		{"type":"progress","payload":{"processedCount":1}},
		{"type":"error","payload":{"code":"E_GEMINI_TIMEOUT"}},
		{"type":"progress","payload":{"processedCount":2}}
	]`)
	got := w.got()
	wantTypes := []string{protocol.TypeJobStarted, protocol.TypeJobProgress, protocol.TypeError, protocol.TypeJobProgress}
	if len(got) != len(wantTypes) || len(msgs) != len(wantTypes) {
		t.Fatalf("subscriber saw %d messages, Append returned %d, want %d", len(got), len(msgs), len(wantTypes))
	}
	for i, m := range got {
		if m.Seq != int64(i+1) || m.Type != wantTypes[i] || m != msgs[i] {
			t.Fatalf("published message %d: seq %d type %s, want seq %d type %s (and the returned message)", i, m.Seq, m.Type, i+1, wantTypes[i])
		}
		if m.TS != t0.Add(1500*time.Millisecond).UnixMilli() {
			t.Fatalf("message %d stamped %d", i, m.TS)
		}
		if storedAtPublish[i] != 4 {
			t.Fatalf("message %d published when the store had seq %d, want 4: publish before persist", i, storedAtPublish[i])
		}
	}
	if len(other.got()) != 0 {
		t.Fatalf("another job's subscriber saw %d messages", len(other.got()))
	}
	job := f.stored(t, "job-1")
	if job.Status != protocol.StatusRunning || job.Seq != 4 || job.ProcessedCount != 2 || job.LastError == nil {
		t.Fatalf("stored job %+v", job.JobState)
	}
	logged, err := f.store.Messages(context.Background(), "job-1", 0)
	if err != nil || len(logged) != 2 || logged[0].Seq != 1 || logged[1].Seq != 3 {
		t.Fatalf("logged messages %+v, %v; want seqs 1 and 3", logged, err)
	}

	// The next append continues the sequence.
	f.append(t, "job-1", `{"type":"completed","payload":{"successCount":3}}`)
	got = w.got()
	if len(got) != 5 || got[4].Seq != 5 || got[4].Type != protocol.TypeJobCompleted {
		t.Fatalf("after completion the subscriber saw %d messages, last %+v", len(got), got[len(got)-1].Envelope)
	}
	if job := f.stored(t, "job-1"); job.Status != protocol.StatusCompleted || !job.FinishedAt.Equal(t0.Add(1500*time.Millisecond)) {
		t.Fatalf("stored job %+v finished %v", job.JobState, job.FinishedAt)
	}
}

func TestAppendRejected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		setup    string // applied to a fresh job first
		jobID    string // appended to; default job-1
		body     string
		wantCode string
		wantMsg  string
		wantSeq  int64 // stored seq afterwards
	}{
		{name: "event after completed", setup: `[{"type":"started"},{"type":"completed"}]`, body: `{"type":"progress","payload":{"processedCount":1}}`,
			wantCode: protocol.ErrJobFinished, wantMsg: "job job-1 is already completed; no events are accepted after a terminal event", wantSeq: 2},
		{name: "event after failed", setup: `{"type":"failed","payload":{"code":"E_X"}}`, body: `{"type":"error","payload":{"code":"E_Y"}}`,
			wantCode: protocol.ErrJobFinished, wantMsg: "job job-1 is already failed", wantSeq: 1},
		{name: "batch with an event after its terminal is rejected whole", setup: `{"type":"started"}`,
			body:     `[{"type":"progress","payload":{"processedCount":5}},{"type":"error","payload":{"code":"E_X"}},{"type":"completed"},{"type":"progress","payload":{"processedCount":6}}]`,
			wantCode: protocol.ErrJobFinished, wantMsg: "event 3: job job-1 is already completed", wantSeq: 1},
		{name: "missing job", jobID: "job-404", body: `{"type":"started"}`, wantCode: protocol.ErrJobNotFound, wantMsg: "job not found"},
		{name: "invalid job id", jobID: "job/1", body: `{"type":"started"}`, wantCode: protocol.ErrJobNotFound, wantMsg: "job not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.create(t, "job-1")
			if tt.setup != "" {
				f.append(t, "job-1", tt.setup)
			}
			before := f.stored(t, "job-1")
			beforeLog, _ := f.store.Messages(context.Background(), "job-1", 0)
			id := tt.jobID
			if id == "" {
				id = "job-1"
			}
			w := f.watch(t, id, nil)
			events, err := protocol.ParseProducerEvents([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			job, msgs, err := f.svc.Append(context.Background(), id, events)
			if job != nil || msgs != nil {
				t.Fatalf("Append returned job %v and %d messages with error %v", job, len(msgs), err)
			}
			wantCode(t, err, tt.wantCode, tt.wantMsg)
			if tt.wantCode == protocol.ErrJobFinished && jobcast.HTTPStatus(tt.wantCode) != 409 {
				t.Fatal("E_JOB_FINISHED does not map to 409")
			}
			if n := len(w.got()); n != 0 {
				t.Fatalf("a rejected append published %d messages", n)
			}
			after := f.stored(t, "job-1")
			if after.Rev != before.Rev || after.Seq != tt.wantSeq || after.Status != before.Status || after.ProcessedCount != before.ProcessedCount {
				t.Fatalf("a rejected append changed the job: rev %d→%d %+v", before.Rev, after.Rev, after.JobState)
			}
			afterLog, _ := f.store.Messages(context.Background(), "job-1", 0)
			if len(afterLog) != len(beforeLog) {
				t.Fatalf("a rejected append logged messages: %d → %d", len(beforeLog), len(afterLog))
			}
		})
	}
}

// flakyStore loses the optimistic-concurrency race a given number of times,
// as when another node updates the job in between.
type flakyStore struct {
	jobcast.JobStore
	mu        sync.Mutex
	conflicts int
	updates   int
}

func (s *flakyStore) UpdateJob(ctx context.Context, job *jobcast.Job, prevRev int64, msgs []*jobcast.Message) error {
	s.mu.Lock()
	s.updates++
	lose := s.conflicts > 0
	if lose {
		s.conflicts--
	}
	s.mu.Unlock()
	if lose {
		return jobcast.ErrConflict
	}
	return s.JobStore.UpdateJob(ctx, job, prevRev, msgs)
}

func TestAppendRetriesConflicts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		conflicts int
		wantErr   bool
	}{
		{name: "no conflict", conflicts: 0},
		{name: "a few conflicts", conflicts: 3},
		{name: "gives up", conflicts: 1000, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store := &flakyStore{JobStore: inmem.NewJobStore(), conflicts: tt.conflicts}
			broker := inmem.NewBroker()
			svc := jobs.New(store, broker, jobcast.NewCatalog(nil), clocktest.New(t0), discardLog())
			if _, err := svc.Create(context.Background(), jobs.CreateRequest{JobID: "job-1", Pipeline: "p"}); err != nil {
				t.Fatal(err)
			}
			var published int
			cancel, _ := broker.Subscribe("job-1", func(*jobcast.Message) { published++ })
			defer cancel()
			job, msgs, err := svc.Append(context.Background(), "job-1", []protocol.ProducerEvent{{Type: protocol.EventStarted, Payload: json.RawMessage(`{}`)}})
			if tt.wantErr {
				if !errors.Is(err, jobcast.ErrConflict) || jobcast.ErrorCode(err) != protocol.ErrInternal {
					t.Fatalf("Append = %v (code %s), want a wrapped ErrConflict with E_INTERNAL", err, jobcast.ErrorCode(err))
				}
				if store.updates < 2 || store.updates > 100 {
					t.Fatalf("gave up after %d attempts", store.updates)
				}
				if published != 0 {
					t.Fatalf("a failed append published %d messages", published)
				}
				return
			}
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if store.updates != tt.conflicts+1 {
				t.Fatalf("%d UpdateJob calls, want %d", store.updates, tt.conflicts+1)
			}
			// Retrying re-applies the events to a fresh copy: seq is 1,
			// not 1+conflicts.
			if job.Seq != 1 || len(msgs) != 1 || msgs[0].Seq != 1 || published != 1 {
				t.Fatalf("after %d conflicts: seq %d, %d messages, %d published", tt.conflicts, job.Seq, len(msgs), published)
			}
			stored, _ := store.GetJob(context.Background(), "job-1")
			if stored.Seq != 1 {
				t.Fatalf("stored seq %d, want 1", stored.Seq)
			}
		})
	}
}

// failingBroker refuses every publish.
type failingBroker struct{ inmem.Broker }

func (*failingBroker) Publish(context.Context, string, []*jobcast.Message) error {
	return errors.New("broker down")
}

// recordingHandler keeps log records for inspection.
type recordingHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Level.String()+" "+r.Message)
	return nil
}

func (h *recordingHandler) records() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.msgs...)
}

func TestAppendPublishFailureKeepsTheCommit(t *testing.T) {
	t.Parallel()
	store := inmem.NewJobStore()
	logs := &recordingHandler{}
	svc := jobs.New(store, &failingBroker{}, jobcast.NewCatalog(nil), clocktest.New(t0), slog.New(logs))
	if _, err := svc.Create(context.Background(), jobs.CreateRequest{JobID: "job-1", Pipeline: "p"}); err != nil {
		t.Fatal(err)
	}
	_, msgs, err := svc.Append(context.Background(), "job-1", []protocol.ProducerEvent{{Type: protocol.EventFailed, Payload: json.RawMessage(`{"code":"E_X"}`)}})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Append with a failing broker = %d messages, %v; want the committed message", len(msgs), err)
	}
	if job, _ := store.GetJob(context.Background(), "job-1"); job.Status != protocol.StatusFailed {
		t.Fatalf("stored status %s, want failed", job.Status)
	}
	recs := logs.records()
	if len(recs) != 1 || recs[0] != "WARN publish failed; clients will catch up on resume" {
		t.Fatalf("log records %q, want one publish warning", recs)
	}
}

func TestRevokeTokens(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ring, err := auth.NewKeyring(auth.Key{ID: "k1", Secret: []byte(strings.Repeat("s", 32))})
	if err != nil {
		t.Fatal(err)
	}
	tokens := auth.NewTokens(ring, time.Hour, f.clock)
	f.create(t, "job-1")
	f.append(t, "job-1", `{"type":"started"}`)
	w := f.watch(t, "job-1", nil)

	f.clock.Advance(250 * time.Millisecond)
	before, _, err := tokens.Issue("job-1")
	if err != nil {
		t.Fatal(err)
	}
	job, err := f.svc.RevokeTokens(context.Background(), "job-1")
	if err != nil {
		t.Fatalf("RevokeTokens: %v", err)
	}
	wantNB := t0.Add(251 * time.Millisecond)
	if !job.TokensNotBefore.Equal(wantNB) {
		t.Fatalf("TokensNotBefore = %v, want %v (the end of the current millisecond)", job.TokensNotBefore, wantNB)
	}
	stored := f.stored(t, "job-1")
	if !stored.TokensNotBefore.Equal(wantNB) || stored.Seq != 1 {
		t.Fatalf("stored tokensNotBefore %v seq %d; want %v and seq unchanged at 1", stored.TokensNotBefore, stored.Seq, wantNB)
	}
	got := w.got()
	if len(got) != 1 {
		t.Fatalf("subscriber saw %d messages, want one revocation", len(got))
	}
	if m := got[0]; m.Type != jobcast.MessageRevoked || m.JobID != "job-1" || m.TS != wantNB.UnixMilli() || m.Seq != 0 {
		t.Fatalf("revocation message %+v", m.Envelope)
	}
	logged, _ := f.store.Messages(context.Background(), "job-1", 0)
	if len(logged) != 1 {
		t.Fatalf("revocation was logged as a job message: %d logged", len(logged))
	}

	claims, err := tokens.Verify(before, "job-1")
	if err != nil {
		t.Fatal(err)
	}
	if !auth.Revoked(claims, stored) {
		t.Fatal("a token issued before the revocation is not revoked")
	}
	// A token minted a millisecond after the revocation is valid: clients
	// refreshing right after a revoke are not locked out.
	f.clock.Advance(time.Millisecond)
	after, _, err := tokens.Issue("job-1")
	if err != nil {
		t.Fatal(err)
	}
	claims, err = tokens.Verify(after, "job-1")
	if err != nil {
		t.Fatal(err)
	}
	if auth.Revoked(claims, stored) {
		t.Fatal("a token issued after the revocation is revoked")
	}

	if _, err := f.svc.RevokeTokens(context.Background(), "job-404"); !errors.Is(err, jobcast.ErrJobNotFound) {
		t.Fatalf("RevokeTokens of a missing job = %v, want ErrJobNotFound", err)
	}
	if len(w.got()) != 1 {
		t.Fatal("revoking a missing job published a message")
	}
}

func slogWith(h slog.Handler) *slog.Logger { return slog.New(h) }
