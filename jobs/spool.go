package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

var _ jobcast.JobStore = (*Spool)(nil)

// Spool limits, by default: a few minutes of a busy node's writes, far
// below the memory the node already holds for its connections.
const (
	DefaultSpoolMaxWrites = 10000
	DefaultSpoolMaxBytes  = 64 << 20
)

// Flusher retry delays: soon after the first refusal (a disk that was full
// for a moment), then backing off so a long outage costs one failed write
// every few seconds.
const (
	spoolRetryMin = 250 * time.Millisecond
	spoolRetryMax = 5 * time.Second
)

// SpoolOptions tune a Spool. Zero values take the defaults.
type SpoolOptions struct {
	// MaxWrites caps the queued writes (DefaultSpoolMaxWrites).
	MaxWrites int
	// MaxBytes caps the queued writes' estimated size (DefaultSpoolMaxBytes).
	MaxBytes int64
	Clock    jobcast.Clock // default: the system clock
	Log      *slog.Logger  // default: discarded
}

// Spool is a jobcast.JobStore that keeps a node delivering while its store
// refuses writes (a full disk, a read-only data dir: E_UNAVAILABLE). A
// refused write is applied in memory and queued instead, and later writes of
// a job with queued writes queue behind them, so each job's writes reach the
// store in order. Reads see the queued state: GetJob the newest record,
// Messages the logged messages followed by the queued ones, so a client that
// resumes during the outage misses nothing. A background flusher retries the
// queue, oldest write of each job first, with backoff on the injected clock,
// and logs once when the store takes writes again.
//
// A queued write is acknowledged like a committed one (UpdateJob and
// CreateJob return nil) but is not durable: Durable reports whether a job's
// revision is in the store, so that producers can be told. A process killed
// while writes are queued loses them (docs/security.md section 4). Beyond
// MaxWrites or MaxBytes, refused writes fail with E_UNAVAILABLE as without a
// spool.
//
// Like CachedStore it assumes one writer per job at a time on a store no
// other node writes (embedded mode): jobs.Service serializes a job's updates,
// and revisions are prevRev+1, as the SQLite and in-memory stores number them.
type Spool struct {
	store     jobcast.JobStore
	clock     jobcast.Clock
	log       *slog.Logger
	maxWrites int
	maxBytes  int64

	mu          sync.Mutex
	jobs        map[string]*spooledJob
	writes      int
	bytes       int64
	outageSince time.Time // zero: no write waits
	cause       error     // the store's last refusal, for the log
	flushedNow  int       // written late in this outage
	timer       jobcast.Timer
	retry       time.Duration
	closed      bool
	stats       SpoolStats

	// flushing serializes flush runs (the timer's and Close's).
	flushing sync.Mutex
}

// spooledJob is a job with queued writes.
type spooledJob struct {
	job      *jobcast.Job // the newest record, what reads return
	storeRev int64        // the revision in the store; 0: not created there yet
	writes   []spooledWrite
}

// spooledWrite is one queued store call.
type spooledWrite struct {
	create  bool
	job     *jobcast.Job // the record after the write
	prevRev int64
	msgs    []*jobcast.Message // the logged (non-progress) messages
	size    int64
}

// SpoolStats are a Spool's counters, for metrics.
type SpoolStats struct {
	// Queued and QueuedBytes are the writes waiting now.
	Queued      int
	QueuedBytes int64
	// FlushedLate counts queued writes that reached the store.
	FlushedLate uint64
	// Refused counts writes refused because the spool was full.
	Refused uint64
	// Dropped counts queued writes the store rejected for good (a job
	// deleted meanwhile): logged, and lost.
	Dropped uint64
}

// NewSpool returns a spool in front of store. Close closes store.
func NewSpool(store jobcast.JobStore, opt SpoolOptions) *Spool {
	if opt.MaxWrites <= 0 {
		opt.MaxWrites = DefaultSpoolMaxWrites
	}
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = DefaultSpoolMaxBytes
	}
	if opt.Clock == nil {
		opt.Clock = jobcast.SystemClock{}
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	return &Spool{store: store, clock: opt.Clock, log: opt.Log, maxWrites: opt.MaxWrites, maxBytes: opt.MaxBytes,
		jobs: make(map[string]*spooledJob), retry: spoolRetryMin,
		cause: jobcast.Errorf(protocol.ErrUnavailable, "the job store cannot write right now; retry shortly")}
}

// unavailable reports whether err is the store refusing writes for now.
func unavailable(err error) bool {
	return err != nil && jobcast.ErrorCode(err) == protocol.ErrUnavailable
}

// CreateJob implements jobcast.JobStore. A creation the store refuses is
// queued once the store's read says the id is free.
func (s *Spool) CreateJob(ctx context.Context, job *jobcast.Job) error {
	s.mu.Lock()
	_, queued := s.jobs[job.JobID]
	s.mu.Unlock()
	if queued {
		return jobcast.ErrJobExists
	}
	err := s.store.CreateJob(ctx, job)
	if !unavailable(err) {
		return err
	}
	// Reads still work on a full disk; a taken id must fail now, not
	// when the queued creation is flushed after the producer got 201.
	if _, gerr := s.store.GetJob(ctx, job.JobID); gerr == nil {
		return jobcast.ErrJobExists
	} else if !errors.Is(gerr, jobcast.ErrJobNotFound) {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.jobs[job.JobID]; ok {
		return jobcast.ErrJobExists
	}
	job.Rev = 1
	sj := &spooledJob{}
	if err := s.queueLocked(sj, spooledWrite{create: true, job: cloneJob(job)}, err); err != nil {
		return err
	}
	s.jobs[job.JobID] = sj
	return nil
}

// GetJob implements jobcast.JobStore: the newest record, queued or stored.
func (s *Spool) GetJob(ctx context.Context, id string) (*jobcast.Job, error) {
	s.mu.Lock()
	if sj, ok := s.jobs[id]; ok {
		cp := cloneJob(sj.job)
		s.mu.Unlock()
		return cp, nil
	}
	s.mu.Unlock()
	return s.store.GetJob(ctx, id)
}

// UpdateJob implements jobcast.JobStore. A job with queued writes queues
// this one too; otherwise it goes to the store, and is queued if the store
// refuses it.
func (s *Spool) UpdateJob(ctx context.Context, job *jobcast.Job, prevRev int64, msgs []*jobcast.Message) error {
	s.mu.Lock()
	if sj, ok := s.jobs[job.JobID]; ok {
		defer s.mu.Unlock()
		return s.appendLocked(sj, job, prevRev, msgs, nil)
	}
	s.mu.Unlock()
	err := s.store.UpdateJob(ctx, job, prevRev, msgs)
	if !unavailable(err) {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sj, ok := s.jobs[job.JobID]
	if !ok {
		sj = &spooledJob{storeRev: prevRev}
		if err := s.queueLocked(sj, s.write(job, prevRev, msgs), err); err != nil {
			return err
		}
		s.jobs[job.JobID] = sj
		job.Rev = prevRev + 1
		return nil
	}
	return s.appendLocked(sj, job, prevRev, msgs, err)
}

// appendLocked queues an update of a job that has queued writes, checking
// the revision as the store would. cause is the store's refusal, if any.
func (s *Spool) appendLocked(sj *spooledJob, job *jobcast.Job, prevRev int64, msgs []*jobcast.Message, cause error) error {
	if sj.job.Rev != prevRev {
		return jobcast.ErrConflict
	}
	if cause == nil {
		cause = s.cause
	}
	if err := s.queueLocked(sj, s.write(job, prevRev, msgs), cause); err != nil {
		return err
	}
	job.Rev = prevRev + 1 // as the store would have
	return nil
}

// write builds the queued form of an update: the record at its new revision
// and the messages the store logs.
func (s *Spool) write(job *jobcast.Job, prevRev int64, msgs []*jobcast.Message) spooledWrite {
	w := spooledWrite{job: cloneJob(job), prevRev: prevRev}
	w.job.Rev = prevRev + 1
	for _, m := range msgs {
		if m.Type != protocol.TypeJobProgress {
			w.msgs = append(w.msgs, m)
		}
	}
	return w
}

// queueLocked adds w to sj's queue within the limits, or fails with
// E_UNAVAILABLE wrapping cause (the store's refusal, for the log).
func (s *Spool) queueLocked(sj *spooledJob, w spooledWrite, cause error) error {
	w.size = writeSize(&w)
	if s.closed {
		return cause
	}
	s.cause = cause
	if s.writes+1 > s.maxWrites || s.bytes+w.size > s.maxBytes {
		s.stats.Refused++
		return fmt.Errorf("%w: %w", jobcast.Errorf(protocol.ErrUnavailable,
			"the job store cannot write right now and %d writes already wait in memory; retry shortly", s.writes), cause)
	}
	sj.writes = append(sj.writes, w)
	sj.job = w.job
	s.writes++
	s.bytes += w.size
	if s.outageSince.IsZero() {
		s.outageSince = s.clock.Now()
		s.flushedNow = 0
		s.log.Error("the job store refuses writes; delivering from memory and queuing writes until it takes them again",
			"err", cause, "maxQueued", s.maxWrites)
	}
	if s.timer == nil && !s.closed {
		s.timer = s.clock.AfterFunc(s.retry, s.flushFromTimer)
	}
	return nil
}

// writeSize estimates what a queued write holds in memory: the record's
// variable parts and the logged frames, plus a fixed overhead.
func writeSize(w *spooledWrite) int64 {
	j := w.job
	n := 512 + len(j.Metadata) + len(j.Result)
	if j.LastError != nil {
		n += len(j.LastError.Message) + len(j.LastError.Details)
	}
	if j.LastProgress != nil {
		n += len(j.LastProgress.Payload)
	}
	for _, m := range w.msgs {
		frame := len(m.Frame)
		if frame == 0 {
			// A progress message is encoded when first sent; its frame
			// is the payload in an envelope of about 100 bytes.
			frame = 100 + len(m.Payload)
		}
		n += 128 + frame + len(m.Payload)
	}
	return int64(n)
}

// Messages implements jobcast.JobStore: the store's log, then the queued
// messages after it.
func (s *Spool) Messages(ctx context.Context, jobID string, afterSeq int64) ([]protocol.Envelope, error) {
	// The queue first: a write flushed between the two reads is then in
	// both (and dropped from the queued part below), never in neither.
	var queued []protocol.Envelope
	s.mu.Lock()
	sj, ok := s.jobs[jobID]
	if ok {
		for _, w := range sj.writes {
			for _, m := range w.msgs {
				if m.Seq > afterSeq {
					queued = append(queued, m.Envelope)
				}
			}
		}
	}
	s.mu.Unlock()
	stored, err := s.store.Messages(ctx, jobID, afterSeq)
	if err != nil || len(queued) == 0 {
		return stored, err
	}
	last := afterSeq
	if len(stored) > 0 {
		last = stored[len(stored)-1].Seq
	}
	for _, m := range queued {
		if m.Seq > last {
			stored = append(stored, m)
		}
	}
	return stored, nil
}

// DeleteFinishedBefore implements jobcast.JobStore. Jobs whose finish is
// still queued are deleted by a later sweep, once it is in the store.
func (s *Spool) DeleteFinishedBefore(ctx context.Context, t time.Time) (int, error) {
	return s.store.DeleteFinishedBefore(ctx, t)
}

// Durable reports whether revision rev of job id is in the store, not only
// in the spool.
func (s *Spool) Durable(id string, rev int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sj, ok := s.jobs[id]
	return !ok || rev <= sj.storeRev
}

// Stats returns the spool's counters.
func (s *Spool) Stats() SpoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Queued, st.QueuedBytes = s.writes, s.bytes
	return st
}

func (s *Spool) flushFromTimer() {
	s.flushing.Lock()
	defer s.flushing.Unlock()
	s.mu.Lock()
	s.timer = nil
	closed := s.closed
	s.mu.Unlock()
	if closed {
		// Close flushes once more, and the store may be closed by now.
		return
	}
	done := s.flushLocked(context.Background())
	s.mu.Lock()
	defer s.mu.Unlock()
	if done || s.closed || s.timer != nil {
		return
	}
	s.retry = min(2*s.retry, spoolRetryMax)
	s.timer = s.clock.AfterFunc(s.retry, s.flushFromTimer)
}

// flushTimeout bounds one store call of the flusher.
const flushTimeout = 10 * time.Second

// Flush writes the queued writes to the store, each job's in order, until
// the store refuses one or the queue is empty, and reports whether it is.
// The flusher calls it on its timer; Close calls it once more.
func (s *Spool) Flush(ctx context.Context) bool {
	s.flushing.Lock()
	defer s.flushing.Unlock()
	return s.flushLocked(ctx)
}

// flushLocked is Flush with s.flushing held.
func (s *Spool) flushLocked(ctx context.Context) bool {
	s.mu.Lock()
	ids := make([]string, 0, len(s.jobs))
	for id := range s.jobs {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		if !s.flushJob(ctx, id) {
			return false
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.jobs) > 0 {
		return false // queued while flushing; the timer comes back
	}
	if !s.outageSince.IsZero() {
		s.log.Info("the job store takes writes again; the writes queued in memory are stored",
			"written", s.flushedNow, "outage", s.clock.Now().Sub(s.outageSince).Round(time.Millisecond))
		s.outageSince = time.Time{}
	}
	s.retry = spoolRetryMin
	return true
}

// flushJob writes job id's queued writes in order; false when the store
// refused one.
func (s *Spool) flushJob(ctx context.Context, id string) bool {
	for {
		s.mu.Lock()
		sj, ok := s.jobs[id]
		if !ok || len(sj.writes) == 0 {
			s.mu.Unlock()
			return true
		}
		w := sj.writes[0]
		s.mu.Unlock()

		cp := cloneJob(w.job)
		wctx, cancel := context.WithTimeout(ctx, flushTimeout)
		var err error
		if w.create {
			err = s.store.CreateJob(wctx, cp)
		} else {
			err = s.store.UpdateJob(wctx, cp, w.prevRev, w.msgs)
		}
		cancel()
		if unavailable(err) || ctx.Err() != nil {
			s.log.Debug("the job store still refuses writes", "err", err)
			return false
		}

		s.mu.Lock()
		if err != nil {
			// The store will never take it (the job was deleted by
			// retention meanwhile, or a bug): drop the job's queue
			// rather than block every other job behind it.
			s.log.Error("a queued job write was rejected by the store and is lost", "job", id, "queued", len(sj.writes), "err", err)
			for _, q := range sj.writes {
				s.writes--
				s.bytes -= q.size
			}
			s.stats.Dropped += uint64(len(sj.writes))
			delete(s.jobs, id)
			s.mu.Unlock()
			return true
		}
		sj.writes = sj.writes[1:]
		sj.storeRev = w.job.Rev
		s.writes--
		s.bytes -= w.size
		s.stats.FlushedLate++
		s.flushedNow++
		if len(sj.writes) == 0 {
			delete(s.jobs, id)
		}
		s.mu.Unlock()
	}
}

// Close stops the flusher, tries the queue once more and closes the store.
// Writes the store still refuses are lost, and logged.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.mu.Unlock()
	s.flushing.Lock()
	defer s.flushing.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if !s.flushLocked(ctx) {
		st := s.Stats()
		s.log.Error("closing with job writes the store refused; they are lost", "queued", st.Queued)
	}
	return s.store.Close()
}
