package experiment

import (
	"context"
	"log/slog"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/periodic"
)

// Retention deletes sticky assignments whose jobs are long gone, so that
// the table does not grow with every job ever seen. A unit's assignment is
// taken at its first connection; keep must outlast the longest job plus
// the job retention (after which a job cannot reconnect): node wiring uses
// twice the job retention.
type Retention struct {
	*periodic.Runner
	store jobcast.ExperimentStore
	clock jobcast.Clock
	log   *slog.Logger
	keep  time.Duration
}

// NewRetention returns a retention service keeping assignments for keep.
func NewRetention(store jobcast.ExperimentStore, clock jobcast.Clock, log *slog.Logger, keep time.Duration) *Retention {
	r := &Retention{store: store, clock: clock, log: log, keep: keep}
	r.Runner = periodic.New(clock, periodic.SweepInterval(keep), func(ctx context.Context) { r.Sweep(ctx) })
	return r
}

// Sweep deletes expired assignments once.
func (r *Retention) Sweep(ctx context.Context) {
	n, err := r.store.DeleteAssignmentsBefore(ctx, r.clock.Now().Add(-r.keep))
	if err != nil {
		r.log.Warn("experiment assignment retention failed", "err", err)
		return
	}
	if n > 0 {
		r.log.Info("retention removed experiment assignments", "count", n)
	}
}
