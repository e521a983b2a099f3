package telemetry

import (
	"context"
	"log/slog"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/periodic"
)

// RollupDelay is how long after a UTC day ends Retention has its rollups
// built: events still on their way (in the recorder's buffer, in a Write
// being retried) are written by then. A later event of that day is not
// lost: its Write drops the day's rollups and the next sweep rebuilds them.
const RollupDelay = 10 * time.Minute

// Retention deletes telemetry events older than a window and has the
// store's daily rollups built, on an interval, until stopped.
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

// Sweep deletes expired events once, then builds the rollups of the days
// that ended RollupDelay ago or earlier, and returns how many events it
// deleted.
func (r *Retention) Sweep(ctx context.Context) int64 {
	now := r.clock.Now()
	n, err := r.store.DeleteBefore(ctx, now.Add(-r.keep))
	if err != nil {
		r.log.Warn("telemetry retention sweep failed", "err", err)
		n = 0
	} else if n > 0 {
		r.log.Info("telemetry retention removed events", "count", n)
	}
	days, err := r.store.Rollup(ctx, now.Add(-RollupDelay))
	if err != nil {
		r.log.Warn("telemetry rollup failed", "err", err)
	} else if days > 0 {
		r.log.Info("telemetry rollups built", "days", days)
	}
	return n
}
