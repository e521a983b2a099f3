package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2025, 11, 26, 5, 0, 0, 0, time.UTC)

// take calls Allow n times at now and returns how many were allowed.
func take(l *Limiter, key string, now time.Time, n int) int {
	ok := 0
	for range n {
		if l.Allow(key, now) {
			ok++
		}
	}
	return ok
}

func TestLimiterBurstAndRefill(t *testing.T) {
	t.Parallel()
	type step struct {
		at   time.Duration // since t0
		n    int           // attempts
		want int           // allowed
	}
	tests := []struct {
		name        string
		rate, burst float64
		steps       []step
	}{
		{name: "burst then empty", rate: 10, burst: 5, steps: []step{{0, 8, 5}, {0, 1, 0}}},
		{name: "refills at rate", rate: 10, burst: 5, steps: []step{{0, 5, 5}, {100 * time.Millisecond, 3, 1}, {300 * time.Millisecond, 3, 2}}},
		{name: "refill capped at burst", rate: 10, burst: 5, steps: []step{{0, 5, 5}, {time.Hour, 10, 5}}},
		{name: "default burst is the rate", rate: 3, burst: 0, steps: []step{{0, 5, 3}, {time.Second, 5, 3}}},
		{name: "default burst at least one", rate: 0.5, burst: 0, steps: []step{{0, 3, 1}, {time.Second, 1, 0}, {2 * time.Second, 1, 1}}},
		{name: "fractional refill accumulates", rate: 1, burst: 1, steps: []step{{0, 1, 1}, {500 * time.Millisecond, 1, 0}, {999 * time.Millisecond, 1, 0}, {time.Second, 1, 1}}},
		{name: "clock going backwards refills nothing", rate: 10, burst: 2, steps: []step{{time.Second, 2, 2}, {0, 2, 0}, {time.Second, 1, 0}}},
		{name: "carrier-grade NAT default", rate: 200, burst: 0, steps: []step{{0, 250, 200}, {time.Second, 250, 200}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := New(tt.rate, tt.burst)
			for i, s := range tt.steps {
				if got := take(l, "1.2.3.4", t0.Add(s.at), s.n); got != s.want {
					t.Fatalf("step %d (at +%v): %d of %d allowed, want %d", i, s.at, got, s.n, s.want)
				}
			}
		})
	}
}

func TestLimiterKeysAreIndependent(t *testing.T) {
	t.Parallel()
	l := New(1, 2)
	if got := take(l, "a", t0, 3); got != 2 {
		t.Fatalf("key a: %d allowed, want 2", got)
	}
	if got := take(l, "b", t0, 3); got != 2 {
		t.Fatalf("key b after a was drained: %d allowed, want 2", got)
	}
}

func TestLimiterSweepsFullBuckets(t *testing.T) {
	t.Parallel()
	l := New(1, 2)
	for i := range 10000 {
		l.Allow(fmt.Sprint(i), t0) // one token left in each
	}
	l.Allow("busy", t0.Add(-time.Hour)) // busy drains at t0 below
	take(l, "busy", t0, 5)
	if len(l.buckets) != 10001 {
		t.Fatalf("%d buckets, want 10001", len(l.buckets))
	}
	// Half a second later no bucket is full yet: a new key sweeps nothing.
	l.Allow("new-1", t0.Add(500*time.Millisecond))
	if len(l.buckets) != 10002 {
		t.Fatalf("%d buckets after an early sweep, want 10002", len(l.buckets))
	}
	// A second later every bucket refilled except the one just created and
	// the drained one; they carry no state and are dropped.
	l.Allow("new-2", t0.Add(time.Second))
	if len(l.buckets) != 3 {
		t.Fatalf("%d buckets after sweeping, want 3 (busy, new-1, new-2)", len(l.buckets))
	}
	for _, k := range []string{"busy", "new-1", "new-2"} {
		if l.buckets[k] == nil {
			t.Fatalf("bucket %s was swept", k)
		}
	}
	// A swept key starts with a full bucket again.
	if got := take(l, "42", t0.Add(time.Second), 3); got != 2 {
		t.Fatalf("swept key: %d allowed, want 2", got)
	}
}

func TestLimiterConcurrent(t *testing.T) {
	t.Parallel()
	l := New(1, 100)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := take(l, "k", t0, 50)
			mu.Lock()
			allowed += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if allowed != 100 {
		t.Fatalf("%d allowed across goroutines, want exactly the burst of 100", allowed)
	}
}

func TestCounter(t *testing.T) {
	t.Parallel()
	c := NewCounter(2)
	steps := []struct {
		op   string
		key  string
		want bool
	}{
		{"acquire", "a", true},
		{"acquire", "a", true},
		{"acquire", "a", false},
		{"acquire", "b", true},
		{"release", "a", true},
		{"acquire", "a", true},
		{"acquire", "a", false},
		{"release", "a", true},
		{"release", "a", true},
		{"release", "a", true}, // an extra release does not go negative
		{"acquire", "a", true},
		{"acquire", "a", true},
		{"acquire", "a", false},
		{"release", "unknown", true},
		{"acquire", "unknown", true},
	}
	for i, s := range steps {
		switch s.op {
		case "acquire":
			if got := c.Acquire(s.key); got != s.want {
				t.Fatalf("step %d: Acquire(%s) = %v, want %v", i, s.key, got, s.want)
			}
		case "release":
			c.Release(s.key)
		}
	}
	c.Release("b")
	if _, ok := c.n["b"]; ok {
		t.Fatal("a key with no holders is kept in the map")
	}
}

func TestCounterConcurrent(t *testing.T) {
	t.Parallel()
	c := NewCounter(10)
	var wg sync.WaitGroup
	var mu sync.Mutex
	acquired := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.Acquire("ip") {
				mu.Lock()
				acquired++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if acquired != 10 {
		t.Fatalf("%d acquired, want 10", acquired)
	}
	for range 10 {
		c.Release("ip")
	}
	if len(c.n) != 0 {
		t.Fatalf("counter map %v after releasing every slot", c.n)
	}
}

func TestLimiterAllowN(t *testing.T) {
	t.Parallel()
	type step struct {
		at       time.Duration // since t0
		n        float64
		want     bool
		wantWait time.Duration
	}
	tests := []struct {
		name        string
		rate, burst float64
		steps       []step
	}{
		{name: "a batch within the burst", rate: 100, burst: 200, steps: []step{{0, 150, true, 0}, {0, 50, true, 0}, {0, 1, false, 10 * time.Millisecond}}},
		{name: "refused whole, nothing taken", rate: 100, burst: 200, steps: []step{{0, 150, true, 0}, {0, 100, false, 500 * time.Millisecond}, {0, 50, true, 0}}},
		{name: "refill brings the batch in", rate: 100, burst: 200, steps: []step{{0, 200, true, 0}, {0, 100, false, time.Second}, {time.Second, 100, true, 0}}},
		{name: "above the burst never fits", rate: 100, burst: 200, steps: []step{{0, 201, false, 0}, {time.Hour, 201, false, 0}, {time.Hour, 200, true, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := New(tt.rate, tt.burst)
			for i, s := range tt.steps {
				ok, wait := l.AllowN("key", s.n, t0.Add(s.at))
				if ok != s.want || wait != s.wantWait {
					t.Fatalf("step %d: AllowN(%v) = %v, %v; want %v, %v", i, s.n, ok, wait, s.want, s.wantWait)
				}
			}
		})
	}
}
