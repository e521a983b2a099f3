package jobcast_test

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

var testNow = time.Date(2025, 11, 26, 5, 0, 0, 123_000_000, time.UTC)

func newJob() *jobcast.Job {
	return &jobcast.Job{JobState: protocol.JobState{
		JobID: "job-1", Pipeline: "csv_import", Status: protocol.StatusPending,
		CreatedAt: testNow.Add(-time.Minute), UpdatedAt: testNow.Add(-time.Minute),
	}}
}

// parse parses a producer body and fails t when it is invalid.
func parse(t *testing.T, body string) []protocol.ProducerEvent {
	t.Helper()
	events, err := protocol.ParseProducerEvents([]byte(body))
	if err != nil {
		t.Fatalf("ParseProducerEvents(%s): %v", body, err)
	}
	return events
}

// apply runs body through ApplyEvents and fails t on error.
func apply(t *testing.T, job *jobcast.Job, body string, now time.Time) []*jobcast.Message {
	t.Helper()
	msgs, err := jobcast.ApplyEvents(job, parse(t, body), jobcast.NewCatalog(nil), now)
	if err != nil {
		t.Fatalf("ApplyEvents(%s): %v", body, err)
	}
	return msgs
}

// wantDomainError fails t unless err is a *jobcast.Error with this code and
// message.
func wantDomainError(t *testing.T, err error, code, message string) {
	t.Helper()
	var e *jobcast.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T (%v), want *jobcast.Error %s", err, err, code)
	}
	if e.Code != code || e.Message != message {
		t.Fatalf("got %s %q, want %s %q", e.Code, e.Message, code, message)
	}
}

func TestApplyEventsStateMachine(t *testing.T) {
	t.Parallel()
	type want struct {
		status                                 string
		seq, processed, total, success, failed int64
		lastError                              *protocol.ErrorPayload
		finished                               bool
		result                                 string
		lastProgressSeq                        int64 // 0: no LastProgress
		types                                  []string
	}
	geminiTimeout := &protocol.ErrorPayload{Code: "E_GEMINI_TIMEOUT", Message: "The AI service took too long to answer. Retrying.", Retryable: true}
	tests := []struct {
		name   string
		bodies []string
		want   want
	}{
		{
			name:   "started",
			bodies: []string{`{"type":"started","payload":{"totalCount":500}}`},
			want:   want{status: protocol.StatusRunning, seq: 1, total: 500, types: []string{protocol.TypeJobStarted}},
		},
		{
			name:   "started without total keeps the created total",
			bodies: []string{`{"type":"started"}`},
			want:   want{status: protocol.StatusRunning, seq: 1, types: []string{protocol.TypeJobStarted}},
		},
		{
			name:   "progress on a pending job starts it",
			bodies: []string{`{"type":"progress","payload":{"processedCount":10,"totalCount":100}}`},
			want:   want{status: protocol.StatusRunning, seq: 1, processed: 10, total: 100, lastProgressSeq: 1, types: []string{protocol.TypeJobProgress}},
		},
		{
			name: "pending to running to completed",
			bodies: []string{
				`{"type":"started","payload":{"totalCount":10}}`,
				`[{"type":"progress","payload":{"processedCount":3}},{"type":"progress","payload":{"processedCount":5}}]`,
				`{"type":"completed","payload":{"successCount":8,"failureCount":2,"result":{"rows":10}}}`,
			},
			want: want{
				status: protocol.StatusCompleted, seq: 4, processed: 10, total: 10, success: 8, failed: 2,
				finished: true, result: `{"rows":10}`, lastProgressSeq: 3,
				types: []string{protocol.TypeJobStarted, protocol.TypeJobProgress, protocol.TypeJobProgress, protocol.TypeJobCompleted},
			},
		},
		{
			name: "completed keeps a larger processedCount",
			bodies: []string{
				`{"type":"progress","payload":{"processedCount":20}}`,
				`{"type":"completed","payload":{"successCount":8,"failureCount":2}}`,
			},
			want: want{status: protocol.StatusCompleted, seq: 2, processed: 20, success: 8, failed: 2, finished: true, lastProgressSeq: 1,
				types: []string{protocol.TypeJobProgress, protocol.TypeJobCompleted}},
		},
		{
			name:   "completed without counts",
			bodies: []string{`{"type":"completed"}`},
			want:   want{status: protocol.StatusCompleted, seq: 1, finished: true, types: []string{protocol.TypeJobCompleted}},
		},
		{
			name: "error is not terminal and sets lastError",
			bodies: []string{
				`{"type":"started"}`,
				`{"type":"error","payload":{"code":"E_GEMINI_TIMEOUT"}}`,
				`{"type":"progress","payload":{"processedCount":4}}`,
			},
			want: want{status: protocol.StatusRunning, seq: 3, processed: 4, lastError: geminiTimeout, lastProgressSeq: 3,
				types: []string{protocol.TypeJobStarted, protocol.TypeError, protocol.TypeJobProgress}},
		},
		{
			name:   "error on a pending job leaves it pending",
			bodies: []string{`{"type":"error","payload":{"code":"E_GEMINI_TIMEOUT"}}`},
			want:   want{status: protocol.StatusPending, seq: 1, lastError: geminiTimeout, types: []string{protocol.TypeError}},
		},
		{
			name: "failed is terminal",
			bodies: []string{
				`{"type":"started"}`,
				`{"type":"failed","payload":{"code":"E_ENRICHMENT_FAILED","message":"provider down","retryable":true,"details":{"provider":"clearbit"}}}`,
			},
			want: want{status: protocol.StatusFailed, seq: 2, finished: true,
				lastError: &protocol.ErrorPayload{Code: "E_ENRICHMENT_FAILED", Message: "provider down", Retryable: true, Details: json.RawMessage(`{"provider":"clearbit"}`)},
				types:     []string{protocol.TypeJobStarted, protocol.TypeJobFailed}},
		},
		{
			name: "a later error replaces lastError",
			bodies: []string{
				`{"type":"error","payload":{"code":"E_GEMINI_TIMEOUT"}}`,
				`{"type":"error","payload":{"code":"E_CUSTOM_THING","message":"custom"}}`,
			},
			want: want{status: protocol.StatusPending, seq: 2, lastError: &protocol.ErrorPayload{Code: "E_CUSTOM_THING", Message: "custom"},
				types: []string{protocol.TypeError, protocol.TypeError}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			job := newJob()
			var types []string
			for _, body := range tt.bodies {
				for _, m := range apply(t, job, body, testNow) {
					types = append(types, m.Type)
				}
			}
			w := tt.want
			if job.Status != w.status || job.Seq != w.seq || job.ProcessedCount != w.processed || job.TotalCount != w.total ||
				job.SuccessCount != w.success || job.FailureCount != w.failed {
				t.Fatalf("job = status %s seq %d processed %d total %d success %d failure %d\nwant  status %s seq %d processed %d total %d success %d failure %d",
					job.Status, job.Seq, job.ProcessedCount, job.TotalCount, job.SuccessCount, job.FailureCount,
					w.status, w.seq, w.processed, w.total, w.success, w.failed)
			}
			if job.Finished() != w.finished {
				t.Fatalf("Finished() = %v, want %v", job.Finished(), w.finished)
			}
			if w.finished != job.FinishedAt.Equal(testNow) {
				t.Fatalf("FinishedAt = %v, want set=%v", job.FinishedAt, w.finished)
			}
			if !w.finished && !job.FinishedAt.IsZero() {
				t.Fatalf("FinishedAt = %v on an unfinished job", job.FinishedAt)
			}
			if !job.UpdatedAt.Equal(testNow) {
				t.Fatalf("UpdatedAt = %v, want %v", job.UpdatedAt, testNow)
			}
			if string(job.Result) != w.result {
				t.Fatalf("Result = %s, want %s", job.Result, w.result)
			}
			wantErrorPayload(t, job.LastError, w.lastError)
			if w.lastProgressSeq == 0 {
				if job.LastProgress != nil {
					t.Fatalf("LastProgress = %+v, want nil", job.LastProgress)
				}
			} else if job.LastProgress == nil || job.LastProgress.Seq != w.lastProgressSeq || job.LastProgress.Type != protocol.TypeJobProgress {
				t.Fatalf("LastProgress = %+v, want a job_progress with seq %d", job.LastProgress, w.lastProgressSeq)
			}
			if len(types) != len(w.types) {
				t.Fatalf("message types %v, want %v", types, w.types)
			}
			for i := range types {
				if types[i] != w.types[i] {
					t.Fatalf("message types %v, want %v", types, w.types)
				}
			}
		})
	}
}

func wantErrorPayload(t *testing.T, got, want *protocol.ErrorPayload) {
	t.Helper()
	if (got == nil) != (want == nil) {
		t.Fatalf("lastError = %+v, want %+v", got, want)
	}
	if got == nil {
		return
	}
	if got.Code != want.Code || got.Message != want.Message || got.Retryable != want.Retryable || string(got.Details) != string(want.Details) {
		t.Fatalf("lastError = %+v (details %s), want %+v (details %s)", got, got.Details, want, want.Details)
	}
}

func TestApplyEventsMessages(t *testing.T) {
	t.Parallel()
	job := newJob()
	job.Seq = 41
	msgs := apply(t, job, `[
		{"type":"progress","payload":{"processedCount":1,"currentItem":"a.csv"}},
		{"type":"error","payload":{"code":"E_GEMINI_TIMEOUT","retryable":false}},
		{"type":"completed","payload":{"successCount":1}}
	]`, testNow)
	if len(msgs) != 3 {
		t.Fatalf("got %d messages, want 3", len(msgs))
	}
	wantPayloads := []string{
		`{"processedCount":1,"currentItem":"a.csv"}`,
		`{"code":"E_GEMINI_TIMEOUT","message":"The AI service took too long to answer. Retrying.","retryable":false}`,
		`{"successCount":1}`,
	}
	for i, m := range msgs {
		if m.Seq != int64(42+i) {
			t.Errorf("message %d: seq %d, want %d", i, m.Seq, 42+i)
		}
		if m.V != protocol.Version || m.JobID != "job-1" || m.Pipeline != "csv_import" || m.TS != testNow.UnixMilli() {
			t.Errorf("message %d: envelope %+v", i, m.Envelope)
		}
		if string(m.Payload) != wantPayloads[i] {
			t.Errorf("message %d: payload %s, want %s", i, m.Payload, wantPayloads[i])
		}
		// The frame is the encoded envelope, shared by every connection.
		frame := m.EncodedFrame()
		var env protocol.Envelope
		if err := json.Unmarshal(frame, &env); err != nil {
			t.Fatalf("message %d: frame %s: %v", i, frame, err)
		}
		if env.Seq != m.Seq || env.Type != m.Type || string(env.Payload) != string(m.Payload) {
			t.Errorf("message %d: frame %s does not match envelope %+v", i, frame, m.Envelope)
		}
	}
	if job.Seq != 44 {
		t.Fatalf("job.Seq = %d, want 44", job.Seq)
	}
}

func TestApplyEventsAfterTerminal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		setup    string // applied first, successfully
		body     string // rejected
		wantMsg  string
		wantSeq  int64 // seq of the job before body
		terminal string
	}{
		{name: "progress after completed", setup: `{"type":"completed"}`, body: `{"type":"progress","payload":{"processedCount":1}}`,
			wantMsg: "job job-1 is already completed; no events are accepted after a terminal event", wantSeq: 1},
		{name: "completed after failed", setup: `{"type":"failed","payload":{"code":"E_X"}}`, body: `{"type":"completed"}`,
			wantMsg: "job job-1 is already failed; no events are accepted after a terminal event", wantSeq: 1},
		{name: "error after completed", setup: `{"type":"completed"}`, body: `{"type":"error","payload":{"code":"E_X"}}`,
			wantMsg: "job job-1 is already completed; no events are accepted after a terminal event", wantSeq: 1},
		{name: "batch after completed names the first event", setup: `{"type":"completed"}`, body: `[{"type":"started"},{"type":"started"}]`,
			wantMsg: "event 0: job job-1 is already completed; no events are accepted after a terminal event", wantSeq: 1},
		{name: "batch with an event after its own terminal", setup: `{"type":"started"}`,
			body:    `[{"type":"progress","payload":{"processedCount":1}},{"type":"completed"},{"type":"progress","payload":{"processedCount":2}}]`,
			wantMsg: "event 2: job job-1 is already completed; no events are accepted after a terminal event", wantSeq: 1},
		{name: "batch with two terminals", setup: `{"type":"started"}`,
			body:    `[{"type":"failed","payload":{"code":"E_X"}},{"type":"completed"}]`,
			wantMsg: "event 1: job job-1 is already failed; no events are accepted after a terminal event", wantSeq: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			job := newJob()
			apply(t, job, tt.setup, testNow)
			if job.Seq != tt.wantSeq {
				t.Fatalf("seq after setup = %d, want %d", job.Seq, tt.wantSeq)
			}
			msgs, err := jobcast.ApplyEvents(job, parse(t, tt.body), jobcast.NewCatalog(nil), testNow.Add(time.Second))
			if msgs != nil {
				t.Fatalf("got %d messages with error %v, want none", len(msgs), err)
			}
			wantDomainError(t, err, protocol.ErrJobFinished, tt.wantMsg)
			if got := jobcast.HTTPStatus(jobcast.ErrorCode(err)); got != 409 {
				t.Fatalf("HTTPStatus = %d, want 409", got)
			}
		})
	}
}

func TestApplyEventsUnvalidatedInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		event protocol.ProducerEvent
		want  string // exact message, when set
	}{
		{name: "unknown type", event: protocol.ProducerEvent{Type: "paused", Payload: json.RawMessage(`{}`)}, want: `unknown event type "paused"`},
		{name: "progress payload not an object", event: protocol.ProducerEvent{Type: "progress", Payload: json.RawMessage(`[1]`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			job := newJob()
			_, err := jobcast.ApplyEvents(job, []protocol.ProducerEvent{tt.event}, jobcast.NewCatalog(nil), testNow)
			if jobcast.ErrorCode(err) != protocol.ErrBadRequest {
				t.Fatalf("error %v has code %s, want %s", err, jobcast.ErrorCode(err), protocol.ErrBadRequest)
			}
			if tt.want != "" {
				wantDomainError(t, err, protocol.ErrBadRequest, tt.want)
			}
		})
	}
}

// An event that skipped validation and has no payload is read as {}.
func TestApplyEventsEmptyPayload(t *testing.T) {
	t.Parallel()
	job := newJob()
	msgs, err := jobcast.ApplyEvents(job, []protocol.ProducerEvent{{Type: "started"}}, jobcast.NewCatalog(nil), testNow)
	if err != nil {
		t.Fatalf("ApplyEvents: %v", err)
	}
	if len(msgs) != 1 || msgs[0].Seq != 1 || string(msgs[0].Payload) != "{}" || job.Status != protocol.StatusRunning {
		t.Fatalf("msgs %+v, job status %s", msgs, job.Status)
	}
}

func TestApplyEventsUsesCatalogOverrides(t *testing.T) {
	t.Parallel()
	cat := jobcast.NewCatalog(map[string]jobcast.CatalogEntry{
		"E_GEMINI_TIMEOUT": {Message: "Gemini is slow today.", Retryable: false},
	})
	job := newJob()
	msgs, err := jobcast.ApplyEvents(job, parse(t, `{"type":"failed","payload":{"code":"E_GEMINI_TIMEOUT"}}`), cat, testNow)
	if err != nil {
		t.Fatalf("ApplyEvents: %v", err)
	}
	want := `{"code":"E_GEMINI_TIMEOUT","message":"Gemini is slow today.","retryable":false}`
	if string(msgs[0].Payload) != want {
		t.Fatalf("payload %s, want %s", msgs[0].Payload, want)
	}
	wantErrorPayload(t, job.LastError, &protocol.ErrorPayload{Code: "E_GEMINI_TIMEOUT", Message: "Gemini is slow today."})
}

func TestNewMessage(t *testing.T) {
	t.Parallel()
	env := protocol.Envelope{V: 2, Type: protocol.TypeJobStarted, JobID: "j", Seq: 3, TS: 9, Payload: json.RawMessage(`{"totalCount":1}`)}
	m, err := jobcast.NewMessage(env)
	if err != nil {
		t.Fatalf("NewMessage: %v", err)
	}
	if want := `{"v":2,"type":"job_started","jobId":"j","seq":3,"ts":9,"payload":{"totalCount":1}}`; string(m.Frame) != want {
		t.Fatalf("frame %s, want %s", m.Frame, want)
	}
	if _, err := jobcast.NewMessage(protocol.Envelope{Type: "x", Payload: json.RawMessage(`{`)}); err == nil {
		t.Fatal("NewMessage with an invalid payload succeeded")
	}
}

// TestEncodedFrame: ApplyEvents leaves progress frames to be encoded on
// first send, once, by whichever of the job's connections sends first; the
// frame is what NewMessage would have encoded.
func TestEncodedFrame(t *testing.T) {
	t.Parallel()
	job := newJob()
	events, err := protocol.ParseProducerEvents([]byte(`[{"type":"progress","payload":{"processedCount":3, "eta":"<1s"}},{"type":"error","payload":{"code":"E_X"}}]`))
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := jobcast.ApplyEvents(job, events, jobcast.NewCatalog(nil), testNow)
	if err != nil {
		t.Fatal(err)
	}
	progress, logged := msgs[0], msgs[1]
	if progress.Frame != nil {
		t.Errorf("progress frame encoded before it was sent: %s", progress.Frame)
	}
	if logged.Frame == nil {
		t.Error("error message without its frame: the message log stores it")
	}
	want, err := jobcast.NewMessage(progress.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	const watchers = 8
	frames := make([][]byte, watchers)
	var wg sync.WaitGroup
	for i := range watchers {
		wg.Go(func() { frames[i] = progress.EncodedFrame() })
	}
	wg.Wait()
	for i, f := range frames {
		if string(f) != string(want.Frame) {
			t.Fatalf("watcher %d: frame %s, want %s", i, f, want.Frame)
		}
		if &f[0] != &frames[0][0] {
			t.Fatalf("watcher %d got its own encoding, not the shared one", i)
		}
	}
	if got := logged.EncodedFrame(); &got[0] != &logged.Frame[0] {
		t.Error("EncodedFrame re-encoded a message that has its frame")
	}
	revoked := &jobcast.Message{Envelope: protocol.Envelope{Type: jobcast.MessageRevoked, JobID: "j"}}
	if f := revoked.EncodedFrame(); f != nil {
		t.Errorf("internal message got a frame: %s", f)
	}
}

func env(typ string, seq int64) protocol.Envelope {
	return protocol.Envelope{V: protocol.Version, Type: typ, JobID: "job-1", Seq: seq}
}

func TestReplayAfter(t *testing.T) {
	t.Parallel()
	logged := []protocol.Envelope{env(protocol.TypeJobStarted, 1), env(protocol.TypeError, 4), env(protocol.TypeJobCompleted, 7)}
	progress := func(seq int64) *protocol.Envelope {
		e := env(protocol.TypeJobProgress, seq)
		return &e
	}
	tests := []struct {
		name     string
		logged   []protocol.Envelope
		progress *protocol.Envelope
		lastSeq  int64
		want     []int64
	}{
		{name: "from the start", logged: logged, progress: progress(6), lastSeq: 0, want: []int64{1, 4, 6, 7}},
		{name: "after started", logged: logged, progress: progress(6), lastSeq: 1, want: []int64{4, 6, 7}},
		{name: "between error and progress", logged: logged, progress: progress(6), lastSeq: 5, want: []int64{6, 7}},
		{name: "progress already seen", logged: logged, progress: progress(6), lastSeq: 6, want: []int64{7}},
		{name: "everything seen", logged: logged, progress: progress(6), lastSeq: 7, want: nil},
		{name: "ahead of the job", logged: logged, progress: progress(6), lastSeq: 100, want: nil},
		{name: "no progress", logged: logged, progress: nil, lastSeq: 0, want: []int64{1, 4, 7}},
		{name: "progress before every logged message", logged: logged[1:], progress: progress(2), lastSeq: 0, want: []int64{2, 4, 7}},
		{name: "progress after every logged message", logged: logged[:2], progress: progress(9), lastSeq: 0, want: []int64{1, 4, 9}},
		{name: "progress after every logged message, resumed", logged: logged[:2], progress: progress(9), lastSeq: 4, want: []int64{9}},
		{name: "only progress", logged: nil, progress: progress(5), lastSeq: 0, want: []int64{5}},
		{name: "only progress, seen", logged: nil, progress: progress(5), lastSeq: 5, want: nil},
		{name: "nothing", logged: nil, progress: nil, lastSeq: 0, want: nil},
		{name: "negative lastSeq replays all", logged: logged, progress: progress(3), lastSeq: -1, want: []int64{1, 3, 4, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := jobcast.ReplayAfter(tt.logged, tt.progress, tt.lastSeq)
			if len(got) != len(tt.want) {
				t.Fatalf("replay seqs %v, want %v", seqs(got), tt.want)
			}
			for i := range got {
				if got[i].Seq != tt.want[i] {
					t.Fatalf("replay seqs %v, want %v", seqs(got), tt.want)
				}
				wantType := protocol.TypeJobProgress
				for _, l := range tt.logged {
					if l.Seq == got[i].Seq {
						wantType = l.Type
					}
				}
				if got[i].Type != wantType {
					t.Fatalf("replay[%d] type %s, want %s", i, got[i].Type, wantType)
				}
			}
		})
	}
}

func seqs(envs []protocol.Envelope) []int64 {
	out := make([]int64, len(envs))
	for i, e := range envs {
		out[i] = e.Seq
	}
	return out
}
