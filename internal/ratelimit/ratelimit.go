// Package ratelimit holds the per-key token buckets and concurrency counters
// behind jobcast's per-IP limits.
package ratelimit

import (
	"sync"
	"time"
)

// Limiter is a set of token buckets, one per key, refilled at Rate per
// second up to Burst.
type Limiter struct {
	rate  float64
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New returns a limiter; burst defaults to max(rate, 1).
func New(rate, burst float64) *Limiter {
	if burst <= 0 {
		burst = rate
		if burst < 1 {
			burst = 1
		}
	}
	return &Limiter{rate: rate, burst: burst, buckets: make(map[string]*bucket)}
}

// Allow takes one token from key's bucket at time now.
func (l *Limiter) Allow(key string, now time.Time) bool {
	ok, _ := l.AllowN(key, 1, now)
	return ok
}

// Burst is the most tokens a bucket holds: the largest n AllowN can grant.
func (l *Limiter) Burst() float64 { return l.burst }

// AllowN takes n tokens from key's bucket at time now, all or none, so that
// a request counted in units (a batch of events) is refused whole. When it
// refuses, wait is how long until the bucket holds n tokens again, for a
// Retry-After; n above the burst is never granted and wait is then 0.
func (l *Limiter) AllowN(key string, n float64, now time.Time) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= 10000 {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens += el * l.rate
		if b.tokens > l.burst {
			b.tokens = l.burst
		}
		b.last = now
	}
	if b.tokens < n {
		if n > l.burst || l.rate <= 0 {
			return false, 0
		}
		return false, time.Duration((n - b.tokens) / l.rate * float64(time.Second))
	}
	b.tokens -= n
	return true, 0
}

// sweep drops buckets that are full again; they carry no state.
func (l *Limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// Counter counts concurrent holders per key, up to Max.
type Counter struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

// NewCounter returns a counter allowing max holders per key.
func NewCounter(max int) *Counter { return &Counter{max: max, n: make(map[string]int)} }

// Acquire takes a slot for key; false when key is at the limit.
func (c *Counter) Acquire(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] >= c.max {
		return false
	}
	c.n[key]++
	return true
}

// Release returns a slot taken by Acquire.
func (c *Counter) Release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] <= 1 {
		delete(c.n, key)
		return
	}
	c.n[key]--
}
