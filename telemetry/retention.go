package telemetry

import (
	"context"
	"log/slog"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/periodic"
)

// Retention deletes telemetry events older than a window, on an interval,
// until stopped.
type Retention struct {
	*periodic.Runner
	store jobcast.TelemetryStore
	clock jobcast.Clock
	log   *slog.Logger
	keep  time.Duration
}

// NewRetention returns a retention service keeping events for keep.
func NewRetention(store jobcast.TelemetryStore, clock jobcast.Clock, log *slog.Logger, keep time.Duration) *Retention {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Retention{store: store, clock: clock, log: log, keep: keep}
	r.Runner = periodic.New(clock, periodic.SweepInterval(keep), func(ctx context.Context) { r.Sweep(ctx) })
	return r
}

// Sweep deletes expired events once and returns how many it deleted.
func (r *Retention) Sweep(ctx context.Context) int64 {
	n, err := r.store.DeleteBefore(ctx, r.clock.Now().Add(-r.keep))
	if err != nil {
		r.log.Warn("telemetry retention sweep failed", "err", err)
		return 0
	}
	if n > 0 {
		r.log.Info("telemetry retention removed events", "count", n)
	}
	return n
}
