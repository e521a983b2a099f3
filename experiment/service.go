package experiment

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobcast/jobcast"
)

var _ jobcast.ParamAssigner = (*Service)(nil)

// Options are a Service's dependencies.
type Options struct {
	Store jobcast.ExperimentStore
	// Telemetry answers Results; nil makes Results fail.
	Telemetry jobcast.TelemetryStore
	Clock     jobcast.Clock
	Log       *slog.Logger
	// CacheSize bounds the in-memory copy of sticky assignments (default
	// 100,000 units × experiments); a miss reads the store.
	CacheSize int
}

// Service manages experiments and assigns units. It is safe for concurrent
// use. Changes through it apply to the next connection: the running set is
// swapped atomically, and Assign never waits on a writer.
type Service struct {
	opt     Options
	writeMu sync.Mutex // serializes changes: conflict checks see a stable set
	running atomic.Pointer[[]*compiled]

	cacheMu sync.Mutex
	cache   map[string]jobcast.Assignment // experiment id + "\x00" + unit id
}

// New loads the stored experiments and returns a Service.
func New(ctx context.Context, opt Options) (*Service, error) {
	if opt.Clock == nil {
		opt.Clock = jobcast.SystemClock{}
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.CacheSize <= 0 {
		opt.CacheSize = 100_000
	}
	s := &Service{opt: opt, cache: make(map[string]jobcast.Assignment)}
	if err := s.Reload(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload rebuilds the running set from the store: for a change another
// process made to the store.
func (s *Service) Reload(ctx context.Context) error {
	all, err := s.opt.Store.ListExperiments(ctx)
	if err != nil {
		return fmt.Errorf("load experiments: %w", err)
	}
	var run []*compiled
	for _, e := range all {
		if e.Status != jobcast.ExperimentRunning {
			continue
		}
		c, err := compile(e)
		if err != nil {
			// Stored experiments were validated; a newer version's syntax
			// leaves this one out rather than the node down.
			s.opt.Log.Error("experiment cannot run", "experiment", e.ID, "err", err)
			continue
		}
		run = append(run, c)
	}
	s.running.Store(&run)
	return nil
}

// List returns every experiment, oldest first.
func (s *Service) List(ctx context.Context) ([]jobcast.Experiment, error) {
	return s.opt.Store.ListExperiments(ctx)
}

// Get returns one experiment.
func (s *Service) Get(ctx context.Context, id string) (*jobcast.Experiment, error) {
	return s.opt.Store.GetExperiment(ctx, id)
}

// Create validates and stores a new experiment.
func (s *Service) Create(ctx context.Context, e jobcast.Experiment) (*jobcast.Experiment, error) {
	if err := Normalize(&e); err != nil {
		return nil, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	all, err := s.opt.Store.ListExperiments(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkConflicts(&e, all); err != nil {
		return nil, err
	}
	now := s.opt.Clock.Now().UTC()
	e.CreatedAt, e.UpdatedAt = now, now
	e.StartedAt, e.StoppedAt = stamp(e.Status, now, time.Time{}), time.Time{}
	if e.Status == jobcast.ExperimentStopped {
		e.StoppedAt = now
	}
	if err := s.opt.Store.CreateExperiment(ctx, &e); err != nil {
		return nil, err
	}
	s.opt.Log.Info("experiment created", "experiment", e.ID, "status", e.Status)
	return &e, s.Reload(ctx)
}

// Update decodes patch (JSON, any subset of the fields) over the stored
// experiment id and stores the result: a merge, so that `{"coverage":0.5}`
// ramps and `{"status":"running"}` starts. Listing "variants" replaces a
// control/variant pair.
func (s *Service) Update(ctx context.Context, id string, patch []byte) (*jobcast.Experiment, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	old, err := s.opt.Store.GetExperiment(ctx, id)
	if err != nil {
		return nil, err
	}
	e := *old
	e.Variants = append([]jobcast.Variant(nil), old.Variants...)
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(patch, &keys); err != nil {
		return nil, badRequest("the body must be a JSON object: %v", err)
	}
	if _, ok := keys["variants"]; ok {
		// Decoding into the old slice would keep old fields the new
		// entries leave out (a weight).
		e.Control, e.Variant, e.Split, e.Variants = nil, nil, 0, nil
	}
	if _, ok := keys["split"]; ok && e.Control != nil {
		e.Variants = nil // rebuilt from control, variant and the new split
	}
	dec := json.NewDecoder(bytes.NewReader(patch))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return nil, badRequest("experiment: %v", err)
	}
	if e.ID != id {
		return nil, badRequest("the id cannot change (%s in the path, %s in the body)", id, e.ID)
	}
	return s.replaceLocked(ctx, old, e)
}

// Put stores e whole, creating it or replacing the experiment with its
// id: the config file's way in. Timestamps are kept.
func (s *Service) Put(ctx context.Context, e jobcast.Experiment) (*jobcast.Experiment, error) {
	s.writeMu.Lock()
	old, err := s.opt.Store.GetExperiment(ctx, e.ID)
	if err != nil {
		s.writeMu.Unlock()
		if jobcast.ErrorCode(err) == jobcast.CodeExperimentNotFound {
			return s.Create(ctx, e)
		}
		return nil, err
	}
	defer s.writeMu.Unlock()
	return s.replaceLocked(ctx, old, e)
}

func (s *Service) replaceLocked(ctx context.Context, old *jobcast.Experiment, e jobcast.Experiment) (*jobcast.Experiment, error) {
	if err := Normalize(&e); err != nil {
		return nil, err
	}
	if err := checkUpdate(old, &e); err != nil {
		return nil, err
	}
	all, err := s.opt.Store.ListExperiments(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkConflicts(&e, all); err != nil {
		return nil, err
	}
	now := s.opt.Clock.Now().UTC()
	e.CreatedAt, e.UpdatedAt = old.CreatedAt, now
	e.StartedAt, e.StoppedAt = stamp(e.Status, now, old.StartedAt), old.StoppedAt
	switch {
	case e.Status == jobcast.ExperimentStopped && old.Status != jobcast.ExperimentStopped:
		e.StoppedAt = now
	case e.Status == jobcast.ExperimentRunning:
		e.StoppedAt = time.Time{}
	}
	if err := s.opt.Store.UpdateExperiment(ctx, &e); err != nil {
		return nil, err
	}
	s.opt.Log.Info("experiment updated", "experiment", e.ID, "status", e.Status, "coverage", e.Coverage)
	return &e, s.Reload(ctx)
}

// stamp returns when an experiment with status first started.
func stamp(status string, now, started time.Time) time.Time {
	if started.IsZero() && status == jobcast.ExperimentRunning {
		return now
	}
	return started
}

// Assign implements jobcast.ParamAssigner: the values of the running
// experiments that enroll u, from the sticky assignments (decided now for
// an experiment the unit has not met). With nothing running it returns at
// once, without touching the store.
func (s *Service) Assign(ctx context.Context, u jobcast.ExperimentUnit) (jobcast.ParamValues, error) {
	run := *s.running.Load()
	if len(run) == 0 || u.UnitID == "" {
		return nil, nil
	}
	decided := make(map[string]jobcast.Assignment, len(run))
	var proposed []jobcast.Assignment
	now := s.opt.Clock.Now().UTC()
	s.cacheMu.Lock()
	for _, c := range run {
		if a, ok := s.cache[c.exp.ID+"\x00"+u.UnitID]; ok {
			decided[c.exp.ID] = a
			continue
		}
		a := c.decide(&u)
		a.AssignedAt = now
		proposed = append(proposed, a)
	}
	s.cacheMu.Unlock()
	if len(proposed) > 0 {
		stored, err := s.opt.Store.StickAssignments(ctx, u.UnitID, proposed)
		if err != nil {
			return nil, fmt.Errorf("assign %s: %w", u.UnitID, err)
		}
		s.cacheMu.Lock()
		if len(s.cache)+len(stored) > s.opt.CacheSize {
			clear(s.cache) // cheaper than an LRU; the store has them all
		}
		for _, a := range stored {
			decided[a.ExperimentID] = a
			a.New = false
			s.cache[a.ExperimentID+"\x00"+u.UnitID] = a
		}
		s.cacheMu.Unlock()
	}
	var out jobcast.ParamValues
	for _, c := range run {
		a, ok := decided[c.exp.ID]
		if !ok || !a.Enrolled {
			continue
		}
		v, ok := c.value(a.Variant)
		if !ok {
			continue
		}
		if _, taken := out.Value(c.exp.Parameter); taken {
			continue // namespaces prevent this; the older experiment wins
		}
		out = append(out, jobcast.AssignedParam{
			Param: c.exp.Parameter, Value: v, ExperimentID: c.exp.ID, Variant: a.Variant, Expose: a.New,
		})
	}
	return out, nil
}

// readJSON decodes an experiment from r over Defaults.
func readJSON(r io.Reader) (jobcast.Experiment, error) {
	e := Defaults()
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, badRequest("experiment: %v", err)
	}
	return e, nil
}
