package inmem

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

var _ jobcast.JobStore = (*JobStore)(nil)

// JobStore is an in-memory jobcast.JobStore. Jobs are stored as copies so
// callers can never alias stored state.
type JobStore struct {
	mu   sync.RWMutex
	jobs map[string]storedJob
	logs map[string][]protocol.Envelope
}

// storedJob keeps the revision beside the encoded job, so that a
// conditional update need not decode the job to compare it.
type storedJob struct {
	rev  int64
	data []byte
}

// NewJobStore returns an empty JobStore.
func NewJobStore() *JobStore {
	return &JobStore{jobs: make(map[string]storedJob), logs: make(map[string][]protocol.Envelope)}
}

// CreateJob implements jobcast.JobStore.
func (s *JobStore) CreateJob(_ context.Context, job *jobcast.Job) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.jobs[job.JobID]; ok {
		return jobcast.ErrJobExists
	}
	job.Rev = 1
	data, err := json.Marshal(job)
	if err != nil {
		return fmt.Errorf("encode job: %w", err)
	}
	s.jobs[job.JobID] = storedJob{rev: job.Rev, data: data}
	return nil
}

// GetJob implements jobcast.JobStore.
func (s *JobStore) GetJob(_ context.Context, id string) (*jobcast.Job, error) {
	s.mu.RLock()
	sj, ok := s.jobs[id]
	s.mu.RUnlock()
	if !ok {
		return nil, jobcast.ErrJobNotFound
	}
	var job jobcast.Job
	if err := json.Unmarshal(sj.data, &job); err != nil {
		return nil, fmt.Errorf("decode job: %w", err)
	}
	return &job, nil
}

// UpdateJob implements jobcast.JobStore.
func (s *JobStore) UpdateJob(_ context.Context, job *jobcast.Job, prevRev int64, msgs []*jobcast.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.jobs[job.JobID]
	if !ok {
		return jobcast.ErrJobNotFound
	}
	if cur.rev != prevRev {
		return jobcast.ErrConflict
	}
	job.Rev = prevRev + 1
	data, err := json.Marshal(job)
	if err != nil {
		job.Rev = prevRev
		return fmt.Errorf("encode job: %w", err)
	}
	s.jobs[job.JobID] = storedJob{rev: job.Rev, data: data}
	for _, m := range msgs {
		if m.Type != protocol.TypeJobProgress {
			s.logs[job.JobID] = append(s.logs[job.JobID], m.Envelope)
		}
	}
	return nil
}

// Messages implements jobcast.JobStore.
func (s *JobStore) Messages(_ context.Context, jobID string, afterSeq int64) ([]protocol.Envelope, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	log := s.logs[jobID]
	i := sort.Search(len(log), func(i int) bool { return log[i].Seq > afterSeq })
	return append([]protocol.Envelope(nil), log[i:]...), nil
}

// DeleteFinishedBefore implements jobcast.JobStore.
func (s *JobStore) DeleteFinishedBefore(_ context.Context, t time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, sj := range s.jobs {
		var j jobcast.Job
		if err := json.Unmarshal(sj.data, &j); err != nil {
			return n, fmt.Errorf("decode job: %w", err)
		}
		if !j.FinishedAt.IsZero() && j.FinishedAt.Before(t) {
			delete(s.jobs, id)
			delete(s.logs, id)
			n++
		}
	}
	return n, nil
}

// Close implements jobcast.JobStore.
func (s *JobStore) Close() error { return nil }
