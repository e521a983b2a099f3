package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobcast/jobcast"
)

var _ jobcast.ExperimentStore = (*ExperimentStore)(nil)

// ExperimentStore is the cluster jobcast.ExperimentStore: experiments in
// one KV bucket (a JSON document per experiment), sticky assignments in
// another, one key per unit holding that unit's decisions in every
// experiment. One key per unit makes a connection's read one Get, and
// first-writer-wins a revision check: a unit's first decision in an
// experiment is added with Create (no key yet) or Update (at the revision
// read), and a writer that loses re-reads and keeps what is stored, so two
// nodes assigning the same unit at once agree.
type ExperimentStore struct {
	exps    jetstream.KeyValue
	assigns jetstream.KeyValue
}

// NewExperimentStore creates or updates the buckets and returns a store on
// nc. The caller owns nc.
func NewExperimentStore(ctx context.Context, nc *natsgo.Conn, cfg KVConfig) (*ExperimentStore, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	exps, err := openBucket(ctx, js, cfg.name("EXPERIMENTS"), "jobcast experiments, one JSON document per experiment", cfg)
	if err != nil {
		return nil, err
	}
	assigns, err := openBucket(ctx, js, cfg.name("ASSIGNMENTS"), "jobcast sticky experiment assignments, one key per unit", cfg)
	if err != nil {
		return nil, err
	}
	return &ExperimentStore{exps: exps, assigns: assigns}, nil
}

// ListExperiments implements jobcast.ExperimentStore, oldest first.
func (s *ExperimentStore) ListExperiments(ctx context.Context) ([]jobcast.Experiment, error) {
	entries, err := loadAll(ctx, s.exps, ">")
	if err != nil {
		return nil, fmt.Errorf("list experiments: %w", err)
	}
	out := make([]jobcast.Experiment, 0, len(entries))
	for _, e := range entries {
		var x jobcast.Experiment
		if err := json.Unmarshal(e.Value(), &x); err != nil {
			return nil, fmt.Errorf("list experiments: decode %s: %w", e.Key(), err)
		}
		out = append(out, x)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// GetExperiment implements jobcast.ExperimentStore.
func (s *ExperimentStore) GetExperiment(ctx context.Context, id string) (*jobcast.Experiment, error) {
	e, _, err := s.get(ctx, id)
	return e, err
}

func (s *ExperimentStore) get(ctx context.Context, id string) (*jobcast.Experiment, uint64, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	entry, err := s.exps.Get(ctx, keyPart(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, jobcast.ErrExperimentNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get experiment: %w", err)
	}
	var e jobcast.Experiment
	if err := json.Unmarshal(entry.Value(), &e); err != nil {
		return nil, 0, fmt.Errorf("get experiment: decode: %w", err)
	}
	return &e, entry.Revision(), nil
}

// CreateExperiment implements jobcast.ExperimentStore: Create fails when
// the key exists, on any node.
func (s *ExperimentStore) CreateExperiment(ctx context.Context, e *jobcast.Experiment) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("create experiment: %w", err)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if _, err := s.exps.Create(ctx, keyPart(e.ID), data); err != nil {
		if isConflict(err) {
			return jobcast.ErrExperimentExists
		}
		return fmt.Errorf("create experiment: %w", err)
	}
	return nil
}

// UpdateExperiment implements jobcast.ExperimentStore. It replaces the
// stored document at the revision it read, so that it never recreates an
// experiment that is not there; of two nodes updating at once the last
// write wins, as with SQLite.
func (s *ExperimentStore) UpdateExperiment(ctx context.Context, e *jobcast.Experiment) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("update experiment: %w", err)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	for {
		_, rev, err := s.get(ctx, e.ID)
		if err != nil {
			return err
		}
		_, err = s.exps.Update(ctx, keyPart(e.ID), data, rev)
		if isConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("update experiment: %w", err)
		}
		return nil
	}
}

// Watch calls onChange once the current experiments are read and again
// after every change any node makes, until stop is called: a node's
// experiment service reloads its running set from it
// (experiment.Service.Reload), so an experiment created, ramped or stopped
// through any node applies on all without a restart. Calling onChange
// once at the start covers changes made between the service's first load
// and the watch. onChange runs on one goroutine; a burst of changes may
// trigger one call.
func (s *ExperimentStore) Watch(ctx context.Context, onChange func(context.Context)) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	w, err := s.exps.WatchAll(ctx, jetstream.MetaOnly())
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch experiments: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		initial := true
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if initial && e != nil {
					continue // the values onChange will read
				}
				initial = false
				// Drain what else arrived: one reload covers a burst.
				for drained := false; !drained; {
					select {
					case _, ok := <-w.Updates():
						if !ok {
							return
						}
					default:
						drained = true
					}
				}
				onChange(ctx)
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		cancel()
		_ = w.Stop()
		wg.Wait()
	}, nil
}

// storedAssignment is one decision in a unit's document.
type storedAssignment struct {
	Enrolled   bool   `json:"e"`
	Variant    string `json:"v,omitempty"`
	AssignedAt int64  `json:"t"` // Unix milliseconds, as SQLite keeps it
}

// unitDoc is a unit's key: its decision per experiment id.
type unitDoc map[string]storedAssignment

func (d unitDoc) assignment(unitID, expID string) jobcast.Assignment {
	a := d[expID]
	return jobcast.Assignment{ExperimentID: expID, UnitID: unitID, Enrolled: a.Enrolled, Variant: a.Variant, AssignedAt: time.UnixMilli(a.AssignedAt).UTC()}
}

func (s *ExperimentStore) readUnit(ctx context.Context, key string) (unitDoc, uint64, error) {
	entry, err := s.assigns.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read assignments: %w", err)
	}
	var d unitDoc
	if err := json.Unmarshal(entry.Value(), &d); err != nil {
		return nil, 0, fmt.Errorf("read assignments: decode: %w", err)
	}
	return d, entry.Revision(), nil
}

// StickAssignments implements jobcast.ExperimentStore. A reconnect is one
// Get and writes nothing.
func (s *ExperimentStore) StickAssignments(ctx context.Context, unitID string, proposed []jobcast.Assignment) ([]jobcast.Assignment, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	key := keyPart(unitID)
	for {
		doc, rev, err := s.readUnit(ctx, key)
		if err != nil {
			return nil, err
		}
		next := unitDoc{}
		for id, a := range doc {
			next[id] = a
		}
		added := map[string]bool{}
		for _, p := range proposed {
			if _, ok := next[p.ExperimentID]; ok {
				continue
			}
			next[p.ExperimentID] = storedAssignment{Enrolled: p.Enrolled, Variant: p.Variant, AssignedAt: p.AssignedAt.UnixMilli()}
			added[p.ExperimentID] = true
		}
		if len(added) > 0 {
			data, err := json.Marshal(next)
			if err != nil {
				return nil, fmt.Errorf("store assignments: %w", err)
			}
			if rev == 0 {
				_, err = s.assigns.Create(ctx, key, data)
			} else {
				_, err = s.assigns.Update(ctx, key, data, rev)
			}
			if isConflict(err) {
				continue // another node stored first: read its decisions
			}
			if err != nil {
				return nil, fmt.Errorf("store assignments: %w", err)
			}
		}
		out := make([]jobcast.Assignment, 0, len(proposed))
		for _, p := range proposed {
			a := next.assignment(unitID, p.ExperimentID)
			a.New = added[p.ExperimentID]
			out = append(out, a)
		}
		return out, nil
	}
}

// DeleteAssignmentsBefore implements jobcast.ExperimentStore: it reads
// every unit's document and removes the decisions taken before t, deleting
// the key when none is left. A unit written meanwhile keeps its document
// until the next sweep.
func (s *ExperimentStore) DeleteAssignmentsBefore(ctx context.Context, t time.Time) (int64, error) {
	entries, err := loadAll(ctx, s.assigns, ">")
	if err != nil {
		return 0, fmt.Errorf("delete assignments: %w", err)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	cut := t.UnixMilli()
	var n int64
	for _, e := range entries {
		var d unitDoc
		if err := json.Unmarshal(e.Value(), &d); err != nil {
			return n, fmt.Errorf("delete assignments: decode: %w", err)
		}
		removed := 0
		for id, a := range d {
			if a.AssignedAt < cut {
				delete(d, id)
				removed++
			}
		}
		if removed == 0 {
			continue
		}
		if len(d) == 0 {
			err = s.assigns.Purge(ctx, e.Key(), jetstream.LastRevision(e.Revision()))
		} else {
			data, merr := json.Marshal(d)
			if merr != nil {
				return n, fmt.Errorf("delete assignments: %w", merr)
			}
			_, err = s.assigns.Update(ctx, e.Key(), data, e.Revision())
		}
		if isConflict(err) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("delete assignments: %w", err)
		}
		n += int64(removed)
	}
	if n > 0 {
		// Purges leave a marker per key; drop the markers past the
		// server's default age.
		if err := s.assigns.PurgeDeletes(ctx); err != nil {
			return n, fmt.Errorf("delete assignments: purge markers: %w", err)
		}
	}
	return n, nil
}

// CountAssignments returns how many units experimentID has decided, and
// how many of them it enrolled. It reads every unit: for tests.
func (s *ExperimentStore) CountAssignments(ctx context.Context, experimentID string) (decided, enrolled int64, err error) {
	entries, err := loadAll(ctx, s.assigns, ">")
	if err != nil {
		return 0, 0, fmt.Errorf("count assignments: %w", err)
	}
	for _, e := range entries {
		var d unitDoc
		if err := json.Unmarshal(e.Value(), &d); err != nil {
			return 0, 0, fmt.Errorf("count assignments: decode: %w", err)
		}
		if a, ok := d[experimentID]; ok {
			decided++
			if a.Enrolled {
				enrolled++
			}
		}
	}
	return decided, enrolled, nil
}

// Close does nothing: the connection is the caller's. It lets a node close
// either experiment store the same way.
func (s *ExperimentStore) Close() error { return nil }
