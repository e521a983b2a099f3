package jobs

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/jobcast/jobcast"
)

// DefaultCacheSize is how many jobs a CachedStore keeps by default: every
// job of the load scenarios, a few megabytes of records.
const DefaultCacheSize = 16384

// CachedStore keeps the jobs this node last committed or read in memory, so
// that reading a hot job (each new connection's handshake, each producer
// append) costs no SQLite query and no JSON decoding.
//
// It is only correct when this node is the store's only writer: the
// embedded mode. In cluster mode other nodes commit to the store, so a cached
// record could be older than the store's and the store must stay the only
// truth; wrap nothing there.
//
// It never serves a record older than one this node committed: every
// successful UpdateJob replaces the entry with the committed record, and a
// record read from the store on a miss is only kept when no write or
// deletion went through the cache while it was being read (a counter checked
// under the lock), so a slow read cannot put back a state a concurrent
// update replaced.
type CachedStore struct {
	jobcast.JobStore
	size int

	mu     sync.Mutex
	jobs   map[string]*jobcast.Job
	writes uint64 // bumped by every change that went through the cache
}

// NewCachedStore wraps store with a cache of at most size jobs
// (DefaultCacheSize when size <= 0).
func NewCachedStore(store jobcast.JobStore, size int) *CachedStore {
	if size <= 0 {
		size = DefaultCacheSize
	}
	return &CachedStore{JobStore: store, size: size, jobs: make(map[string]*jobcast.Job)}
}

// GetJob returns the cached record, or reads the store and caches it.
// Callers own the returned Job: a deep copy, as from any store.
func (c *CachedStore) GetJob(ctx context.Context, id string) (*jobcast.Job, error) {
	c.mu.Lock()
	if j, ok := c.jobs[id]; ok {
		cp := cloneJob(j)
		c.mu.Unlock()
		return cp, nil
	}
	before := c.writes
	c.mu.Unlock()
	job, err := c.JobStore.GetJob(ctx, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.writes == before {
		if _, ok := c.jobs[id]; !ok {
			c.put(id, job)
		}
	}
	c.mu.Unlock()
	return job, nil
}

// UpdateJob writes through and caches the committed record; after a failure
// (a conflict, or a write whose outcome is unknown) it forgets the job, so
// the next read goes to the store.
func (c *CachedStore) UpdateJob(ctx context.Context, job *jobcast.Job, prevRev int64, msgs []*jobcast.Message) error {
	err := c.JobStore.UpdateJob(ctx, job, prevRev, msgs)
	c.mu.Lock()
	c.writes++
	switch cached, ok := c.jobs[job.JobID]; {
	case err != nil:
		delete(c.jobs, job.JobID)
	case ok && cached.Rev >= job.Rev:
		// A later revision got here first: two updates of one job whose
		// store calls returned in the other order (the jobs service
		// serializes them per job, but the cache must not rely on it).
	default:
		c.put(job.JobID, job)
	}
	c.mu.Unlock()
	return err
}

// DeleteFinishedBefore deletes through and forgets what it deleted.
func (c *CachedStore) DeleteFinishedBefore(ctx context.Context, t time.Time) (int, error) {
	n, err := c.JobStore.DeleteFinishedBefore(ctx, t)
	c.mu.Lock()
	c.writes++
	for id, j := range c.jobs {
		if err != nil || (j.Finished() && j.FinishedAt.Before(t)) {
			delete(c.jobs, id)
		}
	}
	c.mu.Unlock()
	return n, err
}

// Durable reports whether revision rev of job id is in the store beneath,
// asking a Spool there; without one every acknowledged write is.
func (c *CachedStore) Durable(id string, rev int64) bool {
	if d, ok := c.JobStore.(durableStore); ok {
		return d.Durable(id, rev)
	}
	return true
}

// put stores a copy of job, evicting an arbitrary entry when full (map
// iteration order is random: a cheap random eviction). c.mu is held.
func (c *CachedStore) put(id string, job *jobcast.Job) {
	if _, ok := c.jobs[id]; !ok && len(c.jobs) >= c.size {
		for k := range c.jobs {
			delete(c.jobs, k)
			break
		}
	}
	c.jobs[id] = cloneJob(job)
}

// cloneJob copies a job deeply: the store contract lets callers change
// what they get, byte slices included (storetest's GetReturnsACopy).
func cloneJob(j *jobcast.Job) *jobcast.Job {
	cp := *j
	cp.Metadata = bytes.Clone(j.Metadata)
	cp.Result = bytes.Clone(j.Result)
	if j.LastError != nil {
		e := *j.LastError
		e.Details = bytes.Clone(e.Details)
		cp.LastError = &e
	}
	if j.LastProgress != nil {
		p := *j.LastProgress
		p.Payload = bytes.Clone(p.Payload)
		cp.LastProgress = &p
	}
	return &cp
}
