// Package storetest is the conformance suite for jobcast.JobStore: every
// implementation runs RunJobStoreTests from its own tests, so the embedded
// and cluster stores are held to one contract.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

// base is the suite's reference time; millisecond-aligned because stores
// may keep times at millisecond precision.
var base = time.Date(2025, 11, 26, 5, 0, 0, 0, time.UTC)

// RunJobStoreTests runs the conformance suite. newStore must return a new,
// empty store each time it is called; the suite closes it when the test
// that asked for it ends (newStore must not register its own Close).
func RunJobStoreTests(t *testing.T, newStore func(t *testing.T) jobcast.JobStore) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s jobcast.JobStore)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"CreateDuplicate", testCreateDuplicate},
		{"GetMissing", testGetMissing},
		{"GetReturnsACopy", testGetReturnsACopy},
		{"UpdateBumpsRevAndLogsNonProgress", testUpdateBumpsRevAndLogs},
		{"UpdateStaleRev", testUpdateStaleRev},
		{"UpdateMissing", testUpdateMissing},
		{"MessagesOrderAndFilter", testMessagesOrderAndFilter},
		{"DeleteFinishedBefore", testDeleteFinishedBefore},
		{"ConcurrentUpdates", testConcurrentUpdates},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

func newJob(id string) *jobcast.Job {
	return &jobcast.Job{JobState: protocol.JobState{
		JobID: id, Pipeline: "csv_import", Status: protocol.StatusPending, TotalCount: 500,
		Metadata:  json.RawMessage(`{"source":"s3://bucket/a.csv","rows":500}`),
		CreatedAt: base, UpdatedAt: base,
	}}
}

func create(t *testing.T, s jobcast.JobStore, job *jobcast.Job) {
	t.Helper()
	if err := s.CreateJob(context.Background(), job); err != nil {
		t.Fatalf("CreateJob(%s): %v", job.JobID, err)
	}
}

func get(t *testing.T, s jobcast.JobStore, id string) *jobcast.Job {
	t.Helper()
	job, err := s.GetJob(context.Background(), id)
	if err != nil {
		t.Fatalf("GetJob(%s): %v", id, err)
	}
	return job
}

func messages(t *testing.T, s jobcast.JobStore, id string, afterSeq int64) []protocol.Envelope {
	t.Helper()
	msgs, err := s.Messages(context.Background(), id, afterSeq)
	if err != nil {
		t.Fatalf("Messages(%s, %d): %v", id, afterSeq, err)
	}
	return msgs
}

// apply loads the job, applies the producer events in body at now and stores
// the result, failing t on any error. It returns the stored job.
func apply(t *testing.T, s jobcast.JobStore, id, body string, now time.Time) *jobcast.Job {
	t.Helper()
	job := get(t, s, id)
	prev := job.Rev
	msgs := applyTo(t, job, body, now)
	if err := s.UpdateJob(context.Background(), job, prev, msgs); err != nil {
		t.Fatalf("UpdateJob(%s, rev %d): %v", id, prev, err)
	}
	return job
}

func applyTo(t *testing.T, job *jobcast.Job, body string, now time.Time) []*jobcast.Message {
	t.Helper()
	events, err := protocol.ParseProducerEvents([]byte(body))
	if err != nil {
		t.Fatalf("ParseProducerEvents(%s): %v", body, err)
	}
	msgs, err := jobcast.ApplyEvents(job, events, jobcast.NewCatalog(nil), now)
	if err != nil {
		t.Fatalf("ApplyEvents(%s): %v", body, err)
	}
	return msgs
}

func seqs(envs []protocol.Envelope) []int64 {
	out := []int64{}
	for _, e := range envs {
		out = append(out, e.Seq)
	}
	return out
}

func equalSeqs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// jsonEqual compares two JSON texts by value.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

func testCreateAndGet(t *testing.T, s jobcast.JobStore) {
	job := newJob("job-create")
	job.CreatedAt = base.Add(123456789 * time.Nanosecond)
	create(t, s, job)
	if job.Rev == 0 {
		t.Fatal("CreateJob left Rev at 0")
	}
	got := get(t, s, "job-create")
	if got.Rev != job.Rev {
		t.Fatalf("stored Rev %d, CreateJob set %d", got.Rev, job.Rev)
	}
	if got.JobID != "job-create" || got.Pipeline != "csv_import" || got.Status != protocol.StatusPending ||
		got.TotalCount != 500 || got.Seq != 0 || got.LastError != nil || got.LastProgress != nil {
		t.Fatalf("stored job %+v", got.JobState)
	}
	if !jsonEqual(got.Metadata, job.Metadata) {
		t.Fatalf("metadata %s, want %s", got.Metadata, job.Metadata)
	}
	if !got.CreatedAt.Equal(job.CreatedAt) || !got.UpdatedAt.Equal(base) {
		t.Fatalf("times created %v updated %v, want %v and %v", got.CreatedAt, got.UpdatedAt, job.CreatedAt, base)
	}
	if !got.FinishedAt.IsZero() || !got.TokensNotBefore.IsZero() {
		t.Fatalf("finishedAt %v tokensNotBefore %v, want zero", got.FinishedAt, got.TokensNotBefore)
	}
	if msgs := messages(t, s, "job-create", 0); len(msgs) != 0 {
		t.Fatalf("a new job has %d logged messages", len(msgs))
	}
}

func testCreateDuplicate(t *testing.T, s jobcast.JobStore) {
	create(t, s, newJob("job-dup"))
	again := newJob("job-dup")
	again.Pipeline = "other"
	err := s.CreateJob(context.Background(), again)
	if !errors.Is(err, jobcast.ErrJobExists) {
		t.Fatalf("second CreateJob = %v, want ErrJobExists", err)
	}
	if got := get(t, s, "job-dup"); got.Pipeline != "csv_import" {
		t.Fatalf("duplicate create replaced the job: pipeline %q", got.Pipeline)
	}
}

func testGetMissing(t *testing.T, s jobcast.JobStore) {
	job, err := s.GetJob(context.Background(), "job-missing")
	if !errors.Is(err, jobcast.ErrJobNotFound) || job != nil {
		t.Fatalf("GetJob of a missing job = %v, %v; want nil, ErrJobNotFound", job, err)
	}
	if msgs := messages(t, s, "job-missing", 0); len(msgs) != 0 {
		t.Fatalf("a missing job has %d messages", len(msgs))
	}
}

func testGetReturnsACopy(t *testing.T, s jobcast.JobStore) {
	job := newJob("job-copy")
	create(t, s, job)
	job.Status = protocol.StatusFailed // the caller's copy is not the store's
	got := get(t, s, "job-copy")
	got.Status = protocol.StatusCompleted
	got.Seq = 99
	got.Metadata[2] = 'X'
	again := get(t, s, "job-copy")
	if again.Status != protocol.StatusPending || again.Seq != 0 || !jsonEqual(again.Metadata, newJob("").Metadata) {
		t.Fatalf("changing returned jobs changed the stored one: %+v", again.JobState)
	}
}

func testUpdateBumpsRevAndLogs(t *testing.T, s jobcast.JobStore) {
	ctx := context.Background()
	create(t, s, newJob("job-upd"))
	job := get(t, s, "job-upd")
	prev := job.Rev
	now := base.Add(time.Minute)
	msgs := applyTo(t, job, `[
		{"type":"started","payload":{"totalCount":10}},
		{"type":"progress","payload":{"processedCount":1}},
		{"type":"error","payload":{"code":"E_GEMINI_TIMEOUT","details":{"provider":"gemini"}}},
		{"type":"progress","payload":{"processedCount":2,"currentItem":"row 2"}}
	]`, now)
	job.TokensNotBefore = base.Add(time.Second)
	if err := s.UpdateJob(ctx, job, prev, msgs); err != nil {
		t.Fatalf("UpdateJob: %v", err)
	}
	if job.Rev <= prev {
		t.Fatalf("UpdateJob set Rev %d, want more than %d", job.Rev, prev)
	}
	got := get(t, s, "job-upd")
	if got.Rev != job.Rev {
		t.Fatalf("stored Rev %d, UpdateJob set %d", got.Rev, job.Rev)
	}
	if got.Status != protocol.StatusRunning || got.Seq != 4 || got.ProcessedCount != 2 || got.TotalCount != 10 || !got.UpdatedAt.Equal(now) {
		t.Fatalf("stored job %+v", got.JobState)
	}
	if got.LastError == nil || got.LastError.Code != "E_GEMINI_TIMEOUT" || !got.LastError.Retryable || !jsonEqual(got.LastError.Details, []byte(`{"provider":"gemini"}`)) {
		t.Fatalf("stored lastError %+v", got.LastError)
	}
	if got.LastProgress == nil || got.LastProgress.Seq != 4 || !jsonEqual(got.LastProgress.Payload, []byte(`{"processedCount":2,"currentItem":"row 2"}`)) {
		t.Fatalf("stored lastProgress %+v", got.LastProgress)
	}
	if !got.TokensNotBefore.Equal(base.Add(time.Second)) {
		t.Fatalf("stored tokensNotBefore %v", got.TokensNotBefore)
	}
	logged := messages(t, s, "job-upd", 0)
	if !equalSeqs(seqs(logged), []int64{1, 3}) {
		t.Fatalf("logged seqs %v, want [1 3]: only non-progress messages are logged", seqs(logged))
	}
	for i, want := range []*jobcast.Message{msgs[0], msgs[2]} {
		m := logged[i]
		if m.Type != want.Type || m.JobID != "job-upd" || m.Pipeline != "csv_import" || m.V != protocol.Version ||
			m.TS != now.UnixMilli() || !jsonEqual(m.Payload, want.Payload) {
			t.Fatalf("logged message %d = %+v (payload %s), want %+v (payload %s)", i, m, m.Payload, want.Envelope, want.Payload)
		}
	}

	// A second update with the new revision works and bumps it again.
	rev2 := job.Rev
	msgs = applyTo(t, job, `{"type":"completed","payload":{"successCount":10}}`, now.Add(time.Minute))
	if err := s.UpdateJob(ctx, job, rev2, msgs); err != nil {
		t.Fatalf("second UpdateJob: %v", err)
	}
	if job.Rev <= rev2 {
		t.Fatalf("second UpdateJob set Rev %d, want more than %d", job.Rev, rev2)
	}
	got = get(t, s, "job-upd")
	if got.Status != protocol.StatusCompleted || !got.FinishedAt.Equal(now.Add(time.Minute)) || got.Seq != 5 {
		t.Fatalf("after completion: %+v finishedAt %v", got.JobState, got.FinishedAt)
	}
	if !equalSeqs(seqs(messages(t, s, "job-upd", 0)), []int64{1, 3, 5}) {
		t.Fatalf("logged seqs %v, want [1 3 5]", seqs(messages(t, s, "job-upd", 0)))
	}
}

func testUpdateStaleRev(t *testing.T, s jobcast.JobStore) {
	ctx := context.Background()
	create(t, s, newJob("job-stale"))
	a, b := get(t, s, "job-stale"), get(t, s, "job-stale")
	prev := a.Rev
	msgsA := applyTo(t, a, `{"type":"started","payload":{"totalCount":1}}`, base.Add(time.Second))
	if err := s.UpdateJob(ctx, a, prev, msgsA); err != nil {
		t.Fatalf("first UpdateJob: %v", err)
	}
	msgsB := applyTo(t, b, `{"type":"failed","payload":{"code":"E_LOST_RACE"}}`, base.Add(2*time.Second))
	if err := s.UpdateJob(ctx, b, prev, msgsB); !errors.Is(err, jobcast.ErrConflict) {
		t.Fatalf("UpdateJob with stale rev %d = %v, want ErrConflict", prev, err)
	}
	// A revision from the future conflicts too.
	if err := s.UpdateJob(ctx, b, a.Rev+10, msgsB); !errors.Is(err, jobcast.ErrConflict) {
		t.Fatalf("UpdateJob with future rev = %v, want ErrConflict", err)
	}
	got := get(t, s, "job-stale")
	if got.Rev != a.Rev || got.Status != protocol.StatusRunning || got.LastError != nil {
		t.Fatalf("a conflicting update changed the job: rev %d %+v", got.Rev, got.JobState)
	}
	logged := messages(t, s, "job-stale", 0)
	if len(logged) != 1 || logged[0].Type != protocol.TypeJobStarted {
		t.Fatalf("logged %v after a conflict, want only job_started", logged)
	}
}

func testUpdateMissing(t *testing.T, s jobcast.JobStore) {
	job := newJob("job-ghost")
	msgs := applyTo(t, job, `{"type":"error","payload":{"code":"E_X"}}`, base)
	err := s.UpdateJob(context.Background(), job, 1, msgs)
	if !errors.Is(err, jobcast.ErrJobNotFound) {
		t.Fatalf("UpdateJob of a missing job = %v, want ErrJobNotFound", err)
	}
	if _, err := s.GetJob(context.Background(), "job-ghost"); !errors.Is(err, jobcast.ErrJobNotFound) {
		t.Fatalf("UpdateJob created the job: GetJob = %v", err)
	}
	if got := messages(t, s, "job-ghost", 0); len(got) != 0 {
		t.Fatalf("UpdateJob of a missing job logged %d messages", len(got))
	}
}

func testMessagesOrderAndFilter(t *testing.T, s jobcast.JobStore) {
	create(t, s, newJob("job-log"))
	create(t, s, newJob("job-other"))
	// Logged (non-progress) seqs: 1 started, 4 error, 6 error, 9 error,
	// 10 completed; applied in several updates, interleaved with another
	// job's.
	for i, body := range []string{
		`{"type":"started"}`,
		`[{"type":"progress","payload":{"processedCount":1}},{"type":"progress","payload":{"processedCount":2}}]`,
		`[{"type":"error","payload":{"code":"E_A"}},{"type":"progress","payload":{"processedCount":3}},{"type":"error","payload":{"code":"E_B"}}]`,
		`{"type":"progress","payload":{"processedCount":4}}`,
		`{"type":"progress","payload":{"processedCount":5}}`,
		`[{"type":"error","payload":{"code":"E_C"}},{"type":"completed"}]`,
	} {
		now := base.Add(time.Duration(i) * time.Second)
		apply(t, s, "job-log", body, now)
		apply(t, s, "job-other", `{"type":"error","payload":{"code":"E_OTHER"}}`, now)
	}
	all := messages(t, s, "job-log", 0)
	wantTypes := []string{protocol.TypeJobStarted, protocol.TypeError, protocol.TypeError, protocol.TypeError, protocol.TypeJobCompleted}
	wantCodes := []string{"", "E_A", "E_B", "E_C", ""}
	if len(all) != len(wantTypes) {
		t.Fatalf("logged seqs %v, want [1 4 6 9 10]", seqs(all))
	}
	for i, m := range all {
		if m.Type != wantTypes[i] || m.JobID != "job-log" {
			t.Fatalf("message %d: %s of %s, want %s of job-log", i, m.Type, m.JobID, wantTypes[i])
		}
		if wantCodes[i] != "" {
			var p protocol.ErrorPayload
			if err := json.Unmarshal(m.Payload, &p); err != nil || p.Code != wantCodes[i] {
				t.Fatalf("message %d: payload %s, want code %s", i, m.Payload, wantCodes[i])
			}
		}
	}
	tests := []struct {
		after int64
		want  []int64
	}{
		{-1, []int64{1, 4, 6, 9, 10}},
		{0, []int64{1, 4, 6, 9, 10}},
		{1, []int64{4, 6, 9, 10}},
		{3, []int64{4, 6, 9, 10}},
		{4, []int64{6, 9, 10}},
		{8, []int64{9, 10}},
		{9, []int64{10}},
		{10, []int64{}},
		{1000, []int64{}},
	}
	for _, tt := range tests {
		if got := seqs(messages(t, s, "job-log", tt.after)); !equalSeqs(got, tt.want) {
			t.Errorf("Messages(after %d) = %v, want %v", tt.after, got, tt.want)
		}
	}
	if got := seqs(messages(t, s, "job-other", 3)); !equalSeqs(got, []int64{4, 5, 6}) {
		t.Errorf("other job's Messages(after 3) = %v, want [4 5 6]", got)
	}
}

func testDeleteFinishedBefore(t *testing.T, s jobcast.JobStore) {
	ctx := context.Background()
	cutoff := base.Add(24 * time.Hour)
	finishAt := map[string]time.Time{
		"job-old":         cutoff.Add(-48 * time.Hour),
		"job-just-before": cutoff.Add(-time.Millisecond),
		"job-at-cutoff":   cutoff,
		"job-after":       cutoff.Add(time.Hour),
	}
	for id, at := range finishAt {
		create(t, s, newJob(id))
		apply(t, s, id, `{"type":"error","payload":{"code":"E_HICCUP"}}`, at.Add(-time.Minute))
		apply(t, s, id, `{"type":"completed"}`, at)
	}
	create(t, s, newJob("job-running"))
	apply(t, s, "job-running", `[{"type":"started"},{"type":"error","payload":{"code":"E_HICCUP"}}]`, base)
	create(t, s, newJob("job-failed-old"))
	apply(t, s, "job-failed-old", `{"type":"failed","payload":{"code":"E_DEAD"}}`, base)

	n, err := s.DeleteFinishedBefore(ctx, cutoff)
	if err != nil {
		t.Fatalf("DeleteFinishedBefore: %v", err)
	}
	if n != 3 {
		t.Fatalf("DeleteFinishedBefore deleted %d jobs, want 3 (old, just-before, failed-old)", n)
	}
	for _, id := range []string{"job-old", "job-just-before", "job-failed-old"} {
		if _, err := s.GetJob(ctx, id); !errors.Is(err, jobcast.ErrJobNotFound) {
			t.Errorf("GetJob(%s) after delete = %v, want ErrJobNotFound", id, err)
		}
		if got := messages(t, s, id, 0); len(got) != 0 {
			t.Errorf("%s still has %d logged messages", id, len(got))
		}
	}
	for id, wantSeqs := range map[string][]int64{"job-at-cutoff": {1, 2}, "job-after": {1, 2}, "job-running": {1, 2}} {
		if job := get(t, s, id); job.Seq != 2 {
			t.Errorf("kept job %s has seq %d, want 2", id, job.Seq)
		}
		if got := seqs(messages(t, s, id, 0)); !equalSeqs(got, wantSeqs) {
			t.Errorf("kept job %s has logged seqs %v, want %v", id, got, wantSeqs)
		}
	}
	if n, err := s.DeleteFinishedBefore(ctx, cutoff); err != nil || n != 0 {
		t.Fatalf("second DeleteFinishedBefore = %d, %v; want 0, nil", n, err)
	}
	// A deleted id can be reused; the new job starts with an empty log.
	create(t, s, newJob("job-old"))
	apply(t, s, "job-old", `{"type":"started"}`, cutoff)
	if got := seqs(messages(t, s, "job-old", 0)); !equalSeqs(got, []int64{1}) {
		t.Fatalf("reused id has logged seqs %v, want [1]", got)
	}
}

func testConcurrentUpdates(t *testing.T, s jobcast.JobStore) {
	const workers, perWorker = 8, 15
	ctx := context.Background()
	create(t, s, newJob("job-race"))
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		successes int
		conflicts int
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				for {
					job, err := s.GetJob(ctx, "job-race")
					if err != nil {
						t.Errorf("worker %d: GetJob: %v", w, err)
						return
					}
					prev := job.Rev
					events := []protocol.ProducerEvent{{Type: protocol.EventError, Payload: json.RawMessage(fmt.Sprintf(`{"code":"E_W%d_%d"}`, w, i))}}
					msgs, err := jobcast.ApplyEvents(job, events, jobcast.NewCatalog(nil), base)
					if err != nil {
						t.Errorf("worker %d: ApplyEvents: %v", w, err)
						return
					}
					err = s.UpdateJob(ctx, job, prev, msgs)
					if errors.Is(err, jobcast.ErrConflict) {
						mu.Lock()
						conflicts++
						mu.Unlock()
						continue
					}
					if err != nil {
						t.Errorf("worker %d: UpdateJob: %v", w, err)
						return
					}
					mu.Lock()
					successes++
					mu.Unlock()
					break
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if successes != workers*perWorker {
		t.Fatalf("%d successful updates, want %d", successes, workers*perWorker)
	}
	job := get(t, s, "job-race")
	if job.Seq != int64(successes) {
		t.Fatalf("final seq %d after %d successful updates (%d conflicts retried): updates were lost", job.Seq, successes, conflicts)
	}
	logged := messages(t, s, "job-race", 0)
	if len(logged) != successes {
		t.Fatalf("%d logged messages after %d successful updates", len(logged), successes)
	}
	seen := map[string]bool{}
	for i, m := range logged {
		if m.Seq != int64(i+1) {
			t.Fatalf("logged message %d has seq %d, want %d", i, m.Seq, i+1)
		}
		var p protocol.ErrorPayload
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			t.Fatalf("logged payload %s: %v", m.Payload, err)
		}
		if seen[p.Code] {
			t.Fatalf("update %s logged twice", p.Code)
		}
		seen[p.Code] = true
	}
	t.Logf("%d updates, %d conflicts retried", successes, conflicts)
}
