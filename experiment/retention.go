package experiment

import (
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
type Retention struct{ *periodic.Retention }

// NewRetention returns a retention service keeping assignments for keep.
func NewRetention(store jobcast.ExperimentStore, clock jobcast.Clock, log *slog.Logger, keep time.Duration) *Retention {
	return &Retention{periodic.NewRetention(clock, log, keep, store.DeleteAssignmentsBefore,
		"experiment assignment retention failed", "retention removed experiment assignments")}
}
