package periodic

import (
	"context"
	"log/slog"
	"time"

	"github.com/jobcast/jobcast"
)

// Retention deletes what is older than keep, every SweepInterval(keep):
// the one shape of the job and experiment-assignment retentions, which
// differ only in what they delete and what they log.
type Retention struct {
	*Runner
	clock   jobcast.Clock
	log     *slog.Logger
	keep    time.Duration
	del     func(ctx context.Context, before time.Time) (int64, error)
	failed  string // logged at warn with the error when del fails
	removed string // logged at info with the count when del removed some
}

// NewRetention returns a retention calling del with the cut-off time now −
// keep on each sweep. (Stores count deletions as int or int64.)
func NewRetention[N int | int64](clock jobcast.Clock, log *slog.Logger, keep time.Duration,
	del func(ctx context.Context, before time.Time) (N, error), failed, removed string) *Retention {
	r := &Retention{clock: clock, log: log, keep: keep, failed: failed, removed: removed,
		del: func(ctx context.Context, before time.Time) (int64, error) {
			n, err := del(ctx, before)
			return int64(n), err
		}}
	r.Runner = New(clock, SweepInterval(keep), func(ctx context.Context) { r.Sweep(ctx) })
	return r
}

// Sweep deletes the expired records once.
func (r *Retention) Sweep(ctx context.Context) {
	n, err := r.del(ctx, r.clock.Now().Add(-r.keep))
	if err != nil {
		r.log.Warn(r.failed, "err", err)
		return
	}
	if n > 0 {
		r.log.Info(r.removed, "count", n)
	}
}
