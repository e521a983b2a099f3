package jobcast_test

import (
	"encoding/json"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

// FuzzApplyEvents runs parsed producer events through the state machine,
// starting from any status and seq: it must never panic, seq must increase by
// one per message, and a batch is applied whole or rejected with
// E_JOB_FINISHED.
func FuzzApplyEvents(f *testing.F) {
	for _, seed := range []struct {
		body   string
		status uint8
		seq    uint32
	}{
		{`{"type":"started","payload":{"totalCount":500}}`, 0, 0},
		{`[{"type":"progress","payload":{"processedCount":3,"totalCount":9}},{"type":"error","payload":{"code":"E_GEMINI_TIMEOUT","retryable":false}},{"type":"completed","payload":{"successCount":2,"failureCount":1,"result":{"a":1}}}]`, 1, 41},
		{`{"type":"failed","payload":{"code":"E_NEW","message":"m","details":{"provider":"x"}}}`, 1, 7},
		{`[{"type":"completed"},{"type":"progress","payload":{"processedCount":1}}]`, 0, 0},
		{`{"type":"progress","payload":{"processedCount":1}}`, 2, 5},
		{`{"type":"error","payload":{"code":"E_X","details":null}}`, 3, 2},
	} {
		f.Add([]byte(seed.body), seed.status, seed.seq)
	}
	statuses := []string{protocol.StatusPending, protocol.StatusRunning, protocol.StatusCompleted, protocol.StatusFailed}
	catalog := jobcast.NewCatalog(nil)
	f.Fuzz(func(t *testing.T, body []byte, status uint8, seq uint32) {
		events, err := protocol.ParseProducerEvents(body)
		if err != nil {
			return
		}
		job := newJob()
		job.Status = statuses[int(status)%len(statuses)]
		job.Seq = int64(seq)
		wasFinished := job.Finished()
		msgs, err := jobcast.ApplyEvents(job, events, catalog, testNow)
		terminalAt := -1
		for i := range events {
			if protocol.IsTerminal(events[i].MessageType()) {
				terminalAt = i
				break
			}
		}
		if err != nil {
			if code := jobcast.ErrorCode(err); code != protocol.ErrJobFinished {
				t.Fatalf("validated events rejected with %s: %v", code, err)
			}
			if !wasFinished && (terminalAt < 0 || terminalAt == len(events)-1) {
				t.Fatalf("E_JOB_FINISHED without an event after a terminal: %v", err)
			}
			if msgs != nil {
				t.Fatalf("messages returned with error %v", err)
			}
			return
		}
		if wasFinished {
			t.Fatalf("events accepted on a %s job", statuses[int(status)%len(statuses)])
		}
		if terminalAt >= 0 && terminalAt != len(events)-1 {
			t.Fatalf("events after the terminal event %d accepted", terminalAt)
		}
		if len(msgs) != len(events) {
			t.Fatalf("%d messages for %d events", len(msgs), len(events))
		}
		prev := int64(seq)
		for i, m := range msgs {
			if m.Seq != prev+1 {
				t.Fatalf("message %d: seq %d after %d", i, m.Seq, prev)
			}
			prev = m.Seq
			if m.Type != events[i].MessageType() {
				t.Fatalf("message %d: type %s for event %s", i, m.Type, events[i].Type)
			}
			frame := m.EncodedFrame()
			var env protocol.Envelope
			if err := json.Unmarshal(frame, &env); err != nil {
				t.Fatalf("message %d: frame %q does not decode: %v", i, frame, err)
			}
			if env.Seq != m.Seq || env.Type != m.Type {
				t.Fatalf("message %d: frame %s disagrees with envelope", i, frame)
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(m.Payload, &obj); err != nil {
				t.Fatalf("message %d: payload %s is not an object: %v", i, m.Payload, err)
			}
		}
		if job.Seq != prev {
			t.Fatalf("job.Seq = %d, want %d", job.Seq, prev)
		}
		// The counts the parser recorded give the state that decoding the
		// payloads again gives.
		decoded := newJob()
		decoded.Status, decoded.Seq = statuses[int(status)%len(statuses)], int64(seq)
		plain := make([]protocol.ProducerEvent, len(events))
		for i := range events {
			plain[i] = protocol.ProducerEvent{Type: events[i].Type, Payload: events[i].Payload}
		}
		if _, err := jobcast.ApplyEvents(decoded, plain, catalog, testNow); err != nil {
			t.Fatalf("events applied with their parsed counts fail decoded: %v", err)
		}
		if decoded.ProcessedCount != job.ProcessedCount || decoded.TotalCount != job.TotalCount || decoded.Status != job.Status {
			t.Fatalf("parsed counts give %d/%d %s, decoding gives %d/%d %s", job.ProcessedCount, job.TotalCount, job.Status,
				decoded.ProcessedCount, decoded.TotalCount, decoded.Status)
		}
		if job.Finished() != (terminalAt >= 0) {
			t.Fatalf("status %s after events ending in %s", job.Status, events[len(events)-1].Type)
		}
		if job.Status == protocol.StatusCompleted && job.ProcessedCount < job.SuccessCount+job.FailureCount && job.SuccessCount+job.FailureCount >= 0 {
			t.Fatalf("completed with processed %d < success %d + failure %d", job.ProcessedCount, job.SuccessCount, job.FailureCount)
		}
	})
}
