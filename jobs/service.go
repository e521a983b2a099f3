package jobs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/periodic"
	"github.com/jobcast/jobcast/protocol"
)

var (
	jobIDRE    = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	pipelineRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// Service owns job state changes.
type Service struct {
	store   jobcast.JobStore
	broker  jobcast.Broker
	catalog *jobcast.Catalog
	clock   jobcast.Clock
	log     *slog.Logger

	recorder  jobcast.EventRecorder
	throttled func(jobID string) int64

	// locks serialize updates of one job on this node, so that CAS
	// conflicts only happen between nodes.
	locks [256]sync.Mutex
}

// New returns a job service.
func New(store jobcast.JobStore, broker jobcast.Broker, catalog *jobcast.Catalog, clock jobcast.Clock, log *slog.Logger) *Service {
	return &Service{store: store, broker: broker, catalog: catalog, clock: clock, log: log,
		recorder: jobcast.NopRecorder{}, throttled: func(string) int64 { return 0 }}
}

// SetTelemetry makes the service record job_started, error, job_completed
// and job_failed events. throttled reports how many progress frames of a job
// were coalesced away (the hub knows), for the job's summary; nil means 0.
func (s *Service) SetTelemetry(rec jobcast.EventRecorder, throttled func(jobID string) int64) {
	if rec != nil {
		s.recorder = rec
	}
	if throttled != nil {
		s.throttled = throttled
	}
}

// CreateRequest is the body of POST /v1/jobs.
type CreateRequest struct {
	JobID      string          `json:"jobId"`
	Pipeline   string          `json:"pipeline"`
	TotalCount int64           `json:"totalCount"`
	Metadata   json.RawMessage `json:"metadata"`
}

// Create validates req and stores a new pending job.
func (s *Service) Create(ctx context.Context, req CreateRequest) (*jobcast.Job, error) {
	if !pipelineRE.MatchString(req.Pipeline) {
		return nil, jobcast.Errorf(protocol.ErrBadRequest, "pipeline is required: 1-64 characters of letters, digits, '_', '-' or '.'")
	}
	if req.JobID == "" {
		id, err := NewJobID(s.clock.Now())
		if err != nil {
			return nil, err
		}
		req.JobID = id
	} else if !jobIDRE.MatchString(req.JobID) {
		return nil, jobcast.Errorf(protocol.ErrBadRequest, "jobId must be 1-128 characters of letters, digits, '.', '_', ':' or '-'")
	}
	if req.TotalCount < 0 {
		return nil, jobcast.Errorf(protocol.ErrBadRequest, "totalCount must be >= 0")
	}
	if m := bytes.TrimSpace(req.Metadata); len(m) > 0 && string(m) != "null" {
		// Go callers may pass any bytes; invalid JSON would otherwise
		// fail later as an internal error.
		if m[0] != '{' || !json.Valid(m) {
			return nil, jobcast.Errorf(protocol.ErrBadRequest, "metadata must be a JSON object")
		}
		if len(m) > protocol.MaxMetadataBytes {
			return nil, jobcast.Errorf(protocol.ErrTooLarge, "metadata of %d bytes exceeds %d", len(m), protocol.MaxMetadataBytes)
		}
		req.Metadata = m
	} else {
		req.Metadata = nil
	}
	now := s.clock.Now().UTC()
	job := &jobcast.Job{JobState: protocol.JobState{
		JobID:      req.JobID,
		Pipeline:   req.Pipeline,
		Status:     protocol.StatusPending,
		TotalCount: req.TotalCount,
		Metadata:   req.Metadata,
		CreatedAt:  now,
		UpdatedAt:  now,
	}}
	if err := s.store.CreateJob(ctx, job); err != nil {
		return nil, fmt.Errorf("create job: %w", err)
	}
	return job, nil
}

// Get returns a job.
func (s *Service) Get(ctx context.Context, id string) (*jobcast.Job, error) {
	if !jobIDRE.MatchString(id) {
		return nil, jobcast.ErrJobNotFound
	}
	return s.store.GetJob(ctx, id)
}

// durableStore is a store that may acknowledge a write before it is on
// disk: a Spool, or a CachedStore over one.
type durableStore interface {
	Durable(id string, rev int64) bool
}

// Durable reports whether job, as an accepted Create or Append returned
// it, is in the job store: false while a Spool holds the write in memory
// because the store refuses writes (producers are told so).
func (s *Service) Durable(job *jobcast.Job) bool {
	if d, ok := s.store.(durableStore); ok {
		return d.Durable(job.JobID, job.Rev)
	}
	return true
}

func (s *Service) lock(id string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(id))
	return &s.locks[h.Sum32()%uint32(len(s.locks))]
}

// maxAttempts bounds retries after losing an optimistic-concurrency race.
const maxAttempts = 8

// update loads the job, applies fn and stores the result, retrying when
// another node updated the job in between. fn returns the messages to log.
// On success it calls publish, still holding the job's lock, so that
// concurrent updates on this node reach subscribers in seq order.
func (s *Service) update(ctx context.Context, id string, fn func(*jobcast.Job) ([]*jobcast.Message, error), publish func(*jobcast.Job, []*jobcast.Message)) (*jobcast.Job, []*jobcast.Message, error) {
	if !jobIDRE.MatchString(id) {
		return nil, nil, jobcast.ErrJobNotFound
	}
	mu := s.lock(id)
	mu.Lock()
	defer mu.Unlock()
	for attempt := 0; ; attempt++ {
		job, err := s.store.GetJob(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		prev := job.Rev
		msgs, err := fn(job)
		if err != nil {
			return nil, nil, err
		}
		err = s.store.UpdateJob(ctx, job, prev, msgs)
		if errors.Is(err, jobcast.ErrConflict) && attempt < maxAttempts {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("store job %s: %w", id, err)
		}
		publish(job, msgs)
		return job, msgs, nil
	}
}

// Append applies producer events to a job, persists them and publishes the
// resulting messages. A batch is applied whole or not at all.
func (s *Service) Append(ctx context.Context, id string, events []protocol.ProducerEvent) (*jobcast.Job, []*jobcast.Message, error) {
	var wasPending bool
	job, msgs, err := s.update(ctx, id, func(job *jobcast.Job) ([]*jobcast.Message, error) {
		wasPending = job.Status == protocol.StatusPending
		return jobcast.ApplyEvents(job, events, s.catalog, s.clock.Now().UTC())
	}, func(job *jobcast.Job, msgs []*jobcast.Message) {
		// Before publishing: the hub forgets a job's throttle count once
		// the terminal message has gone out.
		s.record(job, msgs, wasPending)
		s.publish(ctx, id, msgs)
	})
	if err != nil {
		return nil, nil, err
	}
	return job, msgs, nil
}

// record emits the telemetry of one accepted append: job_started when the
// job left pending, an error event per error or failure clients see, and the
// job's summary when it ended.
func (s *Service) record(job *jobcast.Job, msgs []*jobcast.Message, wasPending bool) {
	base := jobcast.Event{TS: job.UpdatedAt, JobID: job.JobID, Pipeline: job.Pipeline}
	if wasPending && job.Status != protocol.StatusPending {
		e := base
		e.Event, e.TotalCount = jobcast.EventJobStarted, job.TotalCount
		s.recorder.Record(e)
	}
	for _, m := range msgs {
		if m.Type != protocol.TypeError && m.Type != protocol.TypeJobFailed {
			continue
		}
		var p struct {
			Code      string `json:"code"`
			Retryable bool   `json:"retryable"`
			Details   struct {
				Provider string `json:"provider"`
			} `json:"details"`
		}
		_ = json.Unmarshal(m.Payload, &p)
		e := base
		e.TS = time.UnixMilli(m.TS).UTC()
		e.Event, e.ErrorCode, e.Provider, e.Retryable = jobcast.EventError, p.Code, p.Details.Provider, p.Retryable
		s.recorder.Record(e)
		if m.Type == protocol.TypeJobFailed {
			e.Event = jobcast.EventJobFailed
			s.summary(job, &e)
			s.recorder.Record(e)
		}
	}
	if job.Status == protocol.StatusCompleted && len(msgs) > 0 && msgs[len(msgs)-1].Type == protocol.TypeJobCompleted {
		e := base
		e.Event = jobcast.EventJobCompleted
		s.summary(job, &e)
		s.recorder.Record(e)
	}
}

// summary fills a job's final stats into its job_completed/job_failed event.
func (s *Service) summary(job *jobcast.Job, e *jobcast.Event) {
	e.DurationMs = job.FinishedAt.Sub(job.CreatedAt).Milliseconds()
	e.SuccessCount, e.FailureCount, e.TotalCount = job.SuccessCount, job.FailureCount, job.TotalCount
	e.MessagesSent = job.Seq
	e.ThrottledCount = s.throttled(job.JobID)
}

// RevokeTokens revokes every token of the job issued until now and tells the
// hubs to close connections that used one.
func (s *Service) RevokeTokens(ctx context.Context, id string) (*jobcast.Job, error) {
	now := s.clock.Now().UTC()
	job, _, err := s.update(ctx, id, func(job *jobcast.Job) ([]*jobcast.Message, error) {
		// Tokens carry their issue time in milliseconds; revoking through
		// the end of the current millisecond covers a token minted a
		// moment ago, and one minted after this call is valid.
		job.TokensNotBefore = now.Truncate(time.Millisecond).Add(time.Millisecond)
		return nil, nil
	}, func(job *jobcast.Job, _ []*jobcast.Message) {
		msg := &jobcast.Message{Envelope: protocol.Envelope{Type: jobcast.MessageRevoked, JobID: id, TS: job.TokensNotBefore.UnixMilli()}}
		s.publish(ctx, id, []*jobcast.Message{msg})
	})
	if err != nil {
		return nil, err
	}
	return job, nil
}

func (s *Service) publish(ctx context.Context, id string, msgs []*jobcast.Message) {
	if len(msgs) == 0 {
		return
	}
	// The messages are committed: a publish failure only delays live
	// delivery until clients resume from the store.
	if err := s.broker.Publish(ctx, id, msgs); err != nil {
		s.log.Warn("publish failed; clients will catch up on resume", "job", id, "err", err)
	}
}

// NewJobID returns a random, time-ordered job id.
func NewJobID(now time.Time) (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate job id: %w", err)
	}
	return fmt.Sprintf("job_%011x%s", now.UnixMilli(), hex.EncodeToString(b)), nil
}

// Retention deletes finished jobs older than the retention window, on an
// interval, until stopped.
type Retention struct{ *periodic.Retention }

// NewRetention returns a retention service keeping finished jobs for keep.
func NewRetention(store jobcast.JobStore, clock jobcast.Clock, log *slog.Logger, keep time.Duration) *Retention {
	return &Retention{periodic.NewRetention(clock, log, keep, store.DeleteFinishedBefore,
		"retention sweep failed", "retention removed finished jobs")}
}
