package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jobcast/jobcast"
)

var _ jobcast.ExperimentStore = (*ExperimentStore)(nil)

// experimentMigrations create the experiment tables, counted in
// experiment_schema as the alert tables count theirs: each part of the
// schema migrates on its own.
var experimentMigrations = []string{
	`CREATE TABLE experiments (
		id         TEXT PRIMARY KEY,
		created_at INTEGER NOT NULL, -- Unix nanoseconds: the list order
		data       BLOB NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE experiment_assignments (
		experiment_id TEXT NOT NULL,
		unit_id       TEXT NOT NULL,
		enrolled      INTEGER NOT NULL,
		variant       TEXT NOT NULL,
		assigned_at   INTEGER NOT NULL,
		PRIMARY KEY (unit_id, experiment_id)
	) WITHOUT ROWID;`,
	`CREATE INDEX experiment_assignments_at ON experiment_assignments(assigned_at);`,
}

// ExperimentStore is the SQLite jobcast.ExperimentStore. Experiments are
// JSON documents; assignments are one row per unit and experiment, keyed
// by unit first so that a connection reads its unit's rows in one range.
type ExperimentStore struct {
	db    *DB
	owned bool
}

// NewExperimentStore migrates the experiment tables of db and returns a
// store on it. Closing the store leaves db open.
func NewExperimentStore(ctx context.Context, db *DB) (*ExperimentStore, error) {
	if err := migrateExperiments(ctx, db.write); err != nil {
		return nil, err
	}
	return &ExperimentStore{db: db}, nil
}

// OpenExperimentStore opens the database at path (the node's jobcast.db)
// and returns its ExperimentStore; closing it closes that handle.
func OpenExperimentStore(ctx context.Context, path string) (*ExperimentStore, error) {
	db, err := Open(ctx, path)
	if err != nil {
		return nil, err
	}
	s, err := NewExperimentStore(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
}

// Close closes the database if the store opened it.
func (s *ExperimentStore) Close() error {
	if s.owned {
		return s.db.Close()
	}
	return nil
}

func migrateExperiments(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate experiment tables: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS experiment_schema (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate experiment tables: %w", err)
	}
	var version int
	err = tx.QueryRowContext(ctx, `SELECT version FROM experiment_schema`).Scan(&version)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO experiment_schema (version) VALUES (0)`); err != nil {
			return fmt.Errorf("migrate experiment tables: %w", err)
		}
	case err != nil:
		return fmt.Errorf("migrate experiment tables: %w", err)
	}
	if version > len(experimentMigrations) {
		return fmt.Errorf("experiment tables have schema version %d, newer than this jobcast (%d)", version, len(experimentMigrations))
	}
	for i := version; i < len(experimentMigrations); i++ {
		if _, err := tx.ExecContext(ctx, experimentMigrations[i]); err != nil {
			return fmt.Errorf("migrate experiment tables to version %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE experiment_schema SET version = ?`, len(experimentMigrations)); err != nil {
		return fmt.Errorf("migrate experiment tables: %w", err)
	}
	return tx.Commit()
}

// ListExperiments implements jobcast.ExperimentStore, oldest first.
func (s *ExperimentStore) ListExperiments(ctx context.Context) ([]jobcast.Experiment, error) {
	rows, err := s.db.read.QueryContext(ctx, `SELECT data FROM experiments ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list experiments: %w", err)
	}
	defer rows.Close()
	var out []jobcast.Experiment
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("list experiments: %w", err)
		}
		var e jobcast.Experiment
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, fmt.Errorf("list experiments: decode: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// GetExperiment implements jobcast.ExperimentStore.
func (s *ExperimentStore) GetExperiment(ctx context.Context, id string) (*jobcast.Experiment, error) {
	var data []byte
	err := s.db.read.QueryRowContext(ctx, `SELECT data FROM experiments WHERE id = ?`, id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, jobcast.ErrExperimentNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get experiment: %w", err)
	}
	var e jobcast.Experiment
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("get experiment: decode: %w", err)
	}
	return &e, nil
}

// CreateExperiment implements jobcast.ExperimentStore.
func (s *ExperimentStore) CreateExperiment(ctx context.Context, e *jobcast.Experiment) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("create experiment: %w", err)
	}
	res, err := s.db.write.ExecContext(ctx, `INSERT INTO experiments (id, created_at, data) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		e.ID, e.CreatedAt.UnixNano(), data)
	if err != nil {
		return fmt.Errorf("create experiment: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return jobcast.ErrExperimentExists
	}
	return nil
}

// UpdateExperiment implements jobcast.ExperimentStore.
func (s *ExperimentStore) UpdateExperiment(ctx context.Context, e *jobcast.Experiment) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("update experiment: %w", err)
	}
	res, err := s.db.write.ExecContext(ctx, `UPDATE experiments SET data = ? WHERE id = ?`, data, e.ID)
	if err != nil {
		return fmt.Errorf("update experiment: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return jobcast.ErrExperimentNotFound
	}
	return nil
}

// StickAssignments implements jobcast.ExperimentStore: it reads the unit's
// rows from the read pool (a reconnect writes nothing) and inserts only the
// missing ones, with INSERT OR IGNORE so that a concurrent first connection
// of the same unit cannot store a second decision.
func (s *ExperimentStore) StickAssignments(ctx context.Context, unitID string, proposed []jobcast.Assignment) ([]jobcast.Assignment, error) {
	stored, err := s.readAssignments(ctx, s.db.read, unitID, proposed)
	if err != nil {
		return nil, err
	}
	var missing []jobcast.Assignment
	for _, p := range proposed {
		if _, ok := stored[p.ExperimentID]; !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		tx, err := s.db.write.BeginTx(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("store assignments: %w", err)
		}
		defer tx.Rollback()
		for _, p := range missing {
			enrolled := 0
			if p.Enrolled {
				enrolled = 1
			}
			res, err := tx.ExecContext(ctx, `INSERT INTO experiment_assignments (experiment_id, unit_id, enrolled, variant, assigned_at)
				VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, p.ExperimentID, unitID, enrolled, p.Variant, p.AssignedAt.UnixMilli())
			if err != nil {
				return nil, fmt.Errorf("store assignments: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				p.UnitID, p.New = unitID, true
				stored[p.ExperimentID] = p
			}
		}
		// Rows another connection stored first, read inside the write
		// transaction so they are there.
		again, err := s.readAssignments(ctx, tx, unitID, missing)
		if err != nil {
			return nil, err
		}
		for id, a := range again {
			if _, ok := stored[id]; !ok {
				stored[id] = a
			}
		}
		if err := tx.Commit(); err != nil {
			return nil, fmt.Errorf("store assignments: %w", err)
		}
	}
	out := make([]jobcast.Assignment, 0, len(proposed))
	for _, p := range proposed {
		if a, ok := stored[p.ExperimentID]; ok {
			out = append(out, a)
		}
	}
	return out, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *ExperimentStore) readAssignments(ctx context.Context, q querier, unitID string, of []jobcast.Assignment) (map[string]jobcast.Assignment, error) {
	out := make(map[string]jobcast.Assignment, len(of))
	if len(of) == 0 {
		return out, nil
	}
	args := []any{unitID}
	for _, p := range of {
		args = append(args, p.ExperimentID)
	}
	rows, err := q.QueryContext(ctx, `SELECT experiment_id, enrolled, variant, assigned_at FROM experiment_assignments
		WHERE unit_id = ? AND experiment_id IN (?`+strings.Repeat(", ?", len(of)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("read assignments: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a jobcast.Assignment
		var enrolled int
		var at int64
		if err := rows.Scan(&a.ExperimentID, &enrolled, &a.Variant, &at); err != nil {
			return nil, fmt.Errorf("read assignments: %w", err)
		}
		a.UnitID, a.Enrolled, a.AssignedAt = unitID, enrolled == 1, time.UnixMilli(at).UTC()
		out[a.ExperimentID] = a
	}
	return out, rows.Err()
}

// DeleteAssignmentsBefore implements jobcast.ExperimentStore.
func (s *ExperimentStore) DeleteAssignmentsBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.db.write.ExecContext(ctx, `DELETE FROM experiment_assignments WHERE assigned_at < ?`, t.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("delete assignments: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// CountAssignments returns how many units experimentID has decided, and
// how many of them it enrolled (for tests and the results' summary).
func (s *ExperimentStore) CountAssignments(ctx context.Context, experimentID string) (decided, enrolled int64, err error) {
	err = s.db.read.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(enrolled), 0) FROM experiment_assignments WHERE experiment_id = ?`,
		experimentID).Scan(&decided, &enrolled)
	if err != nil {
		return 0, 0, fmt.Errorf("count assignments: %w", err)
	}
	return decided, enrolled, nil
}
