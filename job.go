package jobcast

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/jobcast/jobcast/protocol"
)

// Job is a job's full persisted record: the snapshot clients see plus what
// the server needs to resume clients and check tokens.
type Job struct {
	protocol.JobState
	// Rev is the record's revision, bumped by every update; stores use it for
	// optimistic concurrency, as a NATS KV revision would.
	Rev int64 `json:"rev"`
	// LastProgress is the latest job_progress message, replayed to resuming
	// clients. Progress messages are not kept in the message log.
	LastProgress *protocol.Envelope `json:"lastProgress,omitempty"`
	// TokensNotBefore revokes every token issued before it.
	TokensNotBefore time.Time `json:"tokensNotBefore"`
	// FinishedAt is when the job reached a terminal status; retention counts
	// from it.
	FinishedAt time.Time `json:"finishedAt"`
}

// MessageRevoked is an internal broker message type telling hubs that the
// job's tokens issued before the message's TS (Unix ms) are revoked. It is
// never sent to clients.
const MessageRevoked = "_revoked"

// Message is a job message ready for delivery: the envelope and its encoded
// frame, built once and shared by every connection watching the job.
//
// Frame may be nil on a job message: ApplyEvents leaves progress messages
// unencoded, because the throttle coalesces most of them away (at 20
// updates/s and a 500 ms window, 9 in 10 never reach a client), and a broker
// may deliver a message without its frame. Readers that send the frame call
// EncodedFrame, which encodes it once, on first use.
type Message struct {
	protocol.Envelope
	Frame []byte

	once    sync.Once
	encoded []byte // EncodedFrame's encoding when Frame is nil
}

// EncodedFrame returns the message's frame, encoding the envelope on the
// first call when Frame is nil. It is safe for concurrent use: every
// connection watching the job calls it, each under its own lock. A message
// that is not a job message (MessageRevoked) has no frame: nil.
func (m *Message) EncodedFrame() []byte {
	if m.Frame != nil || !protocol.IsJobMessage(m.Type) {
		return m.Frame
	}
	m.once.Do(func() {
		// The envelope's payload was validated when the message was
		// built; encoding cannot fail on it.
		m.encoded, _ = json.Marshal(&m.Envelope)
	})
	return m.encoded
}

// NewMessage encodes env into a Message.
func NewMessage(env protocol.Envelope) (*Message, error) {
	frame, err := json.Marshal(&env)
	if err != nil {
		return nil, fmt.Errorf("encode %s frame: %w", env.Type, err)
	}
	return &Message{Envelope: env, Frame: frame}, nil
}

// JobStore persists jobs and their message logs. Implementations: sqlite
// (embedded) and, later, NATS JetStream (cluster).
type JobStore interface {
	// CreateJob stores a new job; ErrJobExists if the id is taken.
	CreateJob(ctx context.Context, job *Job) error
	// GetJob returns the job; ErrJobNotFound if it does not exist.
	GetJob(ctx context.Context, id string) (*Job, error)
	// UpdateJob replaces the job if its stored revision is still prevRev
	// (ErrConflict otherwise), sets job.Rev to the new revision, and appends
	// the non-progress messages among msgs to the job's message log, all
	// atomically.
	UpdateJob(ctx context.Context, job *Job, prevRev int64, msgs []*Message) error
	// Messages returns the logged messages of a job with seq > afterSeq, in
	// seq order.
	Messages(ctx context.Context, jobID string, afterSeq int64) ([]protocol.Envelope, error)
	// DeleteFinishedBefore deletes jobs that finished before t, with their
	// logs, and returns how many it deleted.
	DeleteFinishedBefore(ctx context.Context, t time.Time) (int, error)
	Close() error
}

// Broker fans job messages out to every node's subscribers. Embedded mode
// uses an in-process broker; cluster mode NATS subjects.
type Broker interface {
	// Publish delivers msgs, all of one job and in seq order, to the job's
	// subscribers.
	Publish(ctx context.Context, jobID string, msgs []*Message) error
	// Subscribe calls fn for each message published for jobID until the
	// returned cancel func is called. fn must not block.
	Subscribe(jobID string, fn func(*Message)) (cancel func(), err error)
}

// ApplyEvents runs events through the job state machine at time now and
// returns the messages they produce, one per event, with consecutive seq
// numbers. The job is modified in place; on error it is left in an undefined
// state and must be discarded. Events after a terminal event fail with
// E_JOB_FINISHED, so a batch is applied whole or not at all.
func ApplyEvents(job *Job, events []protocol.ProducerEvent, catalog *Catalog, now time.Time) ([]*Message, error) {
	msgs := make([]*Message, 0, len(events))
	for i := range events {
		m, err := applyEvent(job, &events[i], catalog, now)
		if err != nil {
			if len(events) > 1 {
				return nil, &Error{Code: ErrorCode(err), Message: fmt.Sprintf("event %d: %s", i, ErrorMessage(err))}
			}
			return nil, err
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

func applyEvent(job *Job, ev *protocol.ProducerEvent, catalog *Catalog, now time.Time) (*Message, error) {
	if job.Finished() {
		return nil, Errorf(protocol.ErrJobFinished, "job %s is already %s; no events are accepted after a terminal event", job.JobID, job.Status)
	}
	payload := ev.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("{}")
	}
	switch ev.Type {
	case protocol.EventStarted:
		if _, total, hasTotal, ok := ev.Counts(); ok {
			if hasTotal {
				job.TotalCount = total
			}
		} else {
			var p struct {
				TotalCount *int64 `json:"totalCount"`
			}
			if err := json.Unmarshal(payload, &p); err != nil {
				return nil, Errorf(protocol.ErrBadRequest, "started payload: %v", err)
			}
			if p.TotalCount != nil {
				job.TotalCount = *p.TotalCount
			}
		}
		job.Status = protocol.StatusRunning
	case protocol.EventProgress:
		// The parser recorded the counts; events built in Go are decoded.
		if processed, total, hasTotal, ok := ev.Counts(); ok {
			job.ProcessedCount = processed
			if hasTotal {
				job.TotalCount = total
			}
		} else {
			var p struct {
				ProcessedCount int64  `json:"processedCount"`
				TotalCount     *int64 `json:"totalCount"`
			}
			if err := json.Unmarshal(payload, &p); err != nil {
				return nil, Errorf(protocol.ErrBadRequest, "progress payload: %v", err)
			}
			job.ProcessedCount = p.ProcessedCount
			if p.TotalCount != nil {
				job.TotalCount = *p.TotalCount
			}
		}
		job.Status = protocol.StatusRunning
	case protocol.EventCompleted:
		var p struct {
			SuccessCount *int64          `json:"successCount"`
			FailureCount *int64          `json:"failureCount"`
			Result       json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(payload, &p); err != nil {
			return nil, Errorf(protocol.ErrBadRequest, "completed payload: %v", err)
		}
		if p.SuccessCount != nil {
			job.SuccessCount = *p.SuccessCount
		}
		if p.FailureCount != nil {
			job.FailureCount = *p.FailureCount
		}
		if n := job.SuccessCount + job.FailureCount; n > job.ProcessedCount {
			job.ProcessedCount = n
		}
		if len(p.Result) > 0 && string(p.Result) != "null" {
			job.Result = p.Result
		}
		job.Status = protocol.StatusCompleted
		job.FinishedAt = now
	case protocol.EventFailed, protocol.EventError:
		var p struct {
			Code      string          `json:"code"`
			Message   *string         `json:"message"`
			Retryable *bool           `json:"retryable"`
			Details   json.RawMessage `json:"details"`
		}
		if err := json.Unmarshal(payload, &p); err != nil {
			return nil, Errorf(protocol.ErrBadRequest, "%s payload: %v", ev.Type, err)
		}
		if string(p.Details) == "null" {
			p.Details = nil
		}
		ep := catalog.Payload(p.Code, p.Message, p.Retryable, p.Details)
		job.LastError = &ep
		if ev.Type == protocol.EventFailed {
			job.Status = protocol.StatusFailed
			job.FinishedAt = now
		}
		raw, err := json.Marshal(&ep)
		if err != nil {
			return nil, fmt.Errorf("encode error payload: %w", err)
		}
		payload = raw
	default:
		return nil, Errorf(protocol.ErrBadRequest, "unknown event type %q", ev.Type)
	}
	job.Seq++
	job.UpdatedAt = now
	env := protocol.Envelope{
		V:        protocol.Version,
		Type:     ev.MessageType(),
		JobID:    job.JobID,
		Pipeline: job.Pipeline,
		Seq:      job.Seq,
		TS:       now.UnixMilli(),
		Payload:  payload,
	}
	if env.Type == protocol.TypeJobProgress {
		// Encoded on first send (EncodedFrame): most are coalesced away.
		msg := &Message{Envelope: env}
		job.LastProgress = &msg.Envelope
		return msg, nil
	}
	return NewMessage(env)
}

// ReplayAfter merges a job's logged messages with its latest progress into
// the replay a client resuming after lastSeq receives, in seq order.
func ReplayAfter(logged []protocol.Envelope, lastProgress *protocol.Envelope, lastSeq int64) []protocol.Envelope {
	out := make([]protocol.Envelope, 0, len(logged)+1)
	progressDone := lastProgress == nil || lastProgress.Seq <= lastSeq
	for _, m := range logged {
		if m.Seq <= lastSeq {
			continue
		}
		if !progressDone && lastProgress.Seq < m.Seq {
			out = append(out, *lastProgress)
			progressDone = true
		}
		out = append(out, m)
	}
	if !progressDone {
		out = append(out, *lastProgress)
	}
	return out
}
