// Package periodic runs a function now and then on an interval, on an
// injected clock, with the Start/Stop shape every jobcast background service
// shares: Start and Stop are idempotent and Stop waits for a running call.
package periodic

import (
	"context"
	"sync"
	"time"

	"github.com/jobcast/jobcast"
)

// Runner calls fn on a timer chain until stopped.
type Runner struct {
	clock    jobcast.Clock
	interval time.Duration
	fn       func(context.Context)

	mu      sync.Mutex
	timer   jobcast.Timer
	started bool
	stopped bool
	wg      sync.WaitGroup
}

// New returns a runner calling fn every interval.
func New(clock jobcast.Clock, interval time.Duration, fn func(context.Context)) *Runner {
	return &Runner{clock: clock, interval: interval, fn: fn}
}

// Start calls fn now and then every interval. A second Start does nothing:
// it must not arm a second timer chain, which Stop would not see.
func (r *Runner) Start() {
	r.mu.Lock()
	started := r.started
	r.started = true
	r.mu.Unlock()
	if !started {
		r.schedule(0)
	}
}

func (r *Runner) schedule(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	r.wg.Add(1)
	r.timer = r.clock.AfterFunc(d, func() {
		defer r.wg.Done()
		r.fn(context.Background())
		r.schedule(r.interval)
	})
}

// Stop ends the chain and waits for a running call.
func (r *Runner) Stop() {
	r.mu.Lock()
	r.stopped = true
	if r.timer != nil && r.timer.Stop() {
		r.wg.Done()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// SweepInterval is how often a retention of keep sweeps: a 24th of it,
// between a second and an hour.
func SweepInterval(keep time.Duration) time.Duration {
	return max(min(keep/24, time.Hour), time.Second)
}
