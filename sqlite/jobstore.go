package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

var _ jobcast.JobStore = (*JobStore)(nil)

// JobStore is the SQLite jobcast.JobStore. Each job is one row holding its
// JSON record; non-progress messages go to a per-job log table.
type JobStore struct {
	db *DB
	// Statements on the hot path, prepared once: parsing the SQL on every
	// call was a fifth of an append's CPU.
	getJob, updateJob, insertMessage *sql.Stmt
}

// NewJobStore returns a JobStore on db. Closing the store closes db.
func NewJobStore(ctx context.Context, db *DB) (*JobStore, error) {
	s := &JobStore{db: db}
	for _, p := range []struct {
		dst   **sql.Stmt
		on    *sql.DB
		query string
	}{
		{&s.getJob, db.read, `SELECT rev, data FROM jobs WHERE id = ?`},
		{&s.updateJob, db.write, `UPDATE jobs SET rev = ?, finished_at = ?, data = ? WHERE id = ? AND rev = ?`},
		{&s.insertMessage, db.write, `INSERT INTO messages (job_id, seq, data) VALUES (?, ?, ?)`},
	} {
		stmt, err := p.on.PrepareContext(ctx, p.query)
		if err != nil {
			s.closeStmts()
			return nil, fmt.Errorf("prepare %q: %w", p.query, err)
		}
		*p.dst = stmt
	}
	return s, nil
}

func (s *JobStore) closeStmts() {
	for _, st := range []*sql.Stmt{s.getJob, s.updateJob, s.insertMessage} {
		if st != nil {
			st.Close()
		}
	}
}

// OpenJobStore opens the database at path and returns its JobStore.
func OpenJobStore(ctx context.Context, path string) (*JobStore, error) {
	db, err := Open(ctx, path)
	if err != nil {
		return nil, err
	}
	s, err := NewJobStore(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func finishedMillis(j *jobcast.Job) int64 {
	if j.FinishedAt.IsZero() {
		return 0
	}
	return j.FinishedAt.UnixMilli()
}

// CreateJob implements jobcast.JobStore.
func (s *JobStore) CreateJob(ctx context.Context, job *jobcast.Job) error {
	job.Rev = 1
	data, err := json.Marshal(job)
	if err != nil {
		return fmt.Errorf("encode job: %w", err)
	}
	_, err = s.db.write.ExecContext(ctx,
		`INSERT INTO jobs (id, rev, finished_at, data) VALUES (?, ?, ?, ?)`,
		job.JobID, job.Rev, finishedMillis(job), data)
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE constraint") || strings.Contains(err.Error(), "PRIMARY KEY") {
			return jobcast.ErrJobExists
		}
		return storageError(fmt.Errorf("insert job: %w", err))
	}
	return nil
}

// GetJob implements jobcast.JobStore.
func (s *JobStore) GetJob(ctx context.Context, id string) (*jobcast.Job, error) {
	var data []byte
	var rev int64
	err := s.getJob.QueryRowContext(ctx, id).Scan(&rev, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, jobcast.ErrJobNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get job: %w", err)
	}
	var job jobcast.Job
	if err := json.Unmarshal(data, &job); err != nil {
		return nil, fmt.Errorf("decode job %s: %w", id, err)
	}
	job.Rev = rev
	return &job, nil
}

// UpdateJob implements jobcast.JobStore.
func (s *JobStore) UpdateJob(ctx context.Context, job *jobcast.Job, prevRev int64, msgs []*jobcast.Message) error {
	newRev := prevRev + 1
	job.Rev = newRev
	data, err := json.Marshal(job)
	if err != nil {
		job.Rev = prevRev
		return fmt.Errorf("encode job: %w", err)
	}
	logged := false
	for _, m := range msgs {
		if m.Type != protocol.TypeJobProgress {
			logged = true
			break
		}
	}
	if !logged {
		// Nothing to log (a batch of progress): the UPDATE alone is
		// atomic, and SQLite's implicit transaction costs less than
		// BEGIN and COMMIT statements of an explicit one, a third of the
		// store's time per request.
		err = s.updateRow(ctx, s.db.write, s.updateJob, job, data, newRev, prevRev)
		if err != nil {
			err = storageError(err)
		}
	} else {
		err = s.tx(ctx, func(tx *sql.Tx) error {
			if err := s.updateRow(ctx, tx, tx.StmtContext(ctx, s.updateJob), job, data, newRev, prevRev); err != nil {
				return err
			}
			stmt := tx.StmtContext(ctx, s.insertMessage)
			for _, m := range msgs {
				if m.Type == protocol.TypeJobProgress {
					continue
				}
				if _, err := stmt.ExecContext(ctx, job.JobID, m.Seq, m.Frame); err != nil {
					return fmt.Errorf("insert message %d: %w", m.Seq, err)
				}
			}
			return nil
		})
	}
	if err != nil {
		job.Rev = prevRev
	}
	return err
}

// queryer is a *sql.DB or *sql.Tx.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// updateRow runs the compare-and-swap UPDATE of job's row; when it changes
// nothing, it tells a deleted job (ErrJobNotFound) from a newer revision
// (ErrConflict).
func (s *JobStore) updateRow(ctx context.Context, q queryer, stmt *sql.Stmt, job *jobcast.Job, data []byte, newRev, prevRev int64) error {
	res, err := stmt.ExecContext(ctx, newRev, finishedMillis(job), data, job.JobID, prevRev)
	if err != nil {
		return fmt.Errorf("update job: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var exists int
		if err := q.QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE id = ?`, job.JobID).Scan(&exists); err == nil && exists == 0 {
			return jobcast.ErrJobNotFound
		}
		return jobcast.ErrConflict
	}
	return nil
}

func (s *JobStore) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return storageError(fmt.Errorf("begin: %w", err))
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return storageError(err)
	}
	if err := tx.Commit(); err != nil {
		return storageError(fmt.Errorf("commit: %w", err))
	}
	return nil
}

// errStorage is what a producer is told when the data dir refuses a write:
// a condition the operator fixes (space, permissions) and the producer
// outlives by retrying, so E_UNAVAILABLE (503) rather than E_INTERNAL.
var errStorage = jobcast.Errorf(protocol.ErrUnavailable, "the job store cannot write right now; retry shortly")

// storageError marks err, when SQLite failed because the disk is full, the
// file is read-only or the file system failed, with errStorage. The SQLite
// text stays in the chain for the server's log.
func storageError(err error) error {
	var se *sqlitedrv.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() & 0xff { // the primary result code
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN:
		return fmt.Errorf("%w: %w", errStorage, err)
	}
	return err
}

// Messages implements jobcast.JobStore.
func (s *JobStore) Messages(ctx context.Context, jobID string, afterSeq int64) ([]protocol.Envelope, error) {
	rows, err := s.db.read.QueryContext(ctx,
		`SELECT data FROM messages WHERE job_id = ? AND seq > ? ORDER BY seq`, jobID, afterSeq)
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	defer rows.Close()
	var out []protocol.Envelope
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("scan message: %w", err)
		}
		var env protocol.Envelope
		if err := json.Unmarshal(data, &env); err != nil {
			return nil, fmt.Errorf("decode message of job %s: %w", jobID, err)
		}
		out = append(out, env)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	return out, nil
}

// DeleteFinishedBefore implements jobcast.JobStore.
func (s *JobStore) DeleteFinishedBefore(ctx context.Context, t time.Time) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		cutoff := t.UnixMilli()
		if _, err := tx.ExecContext(ctx,
			`DELETE FROM messages WHERE job_id IN (SELECT id FROM jobs WHERE finished_at > 0 AND finished_at < ?)`, cutoff); err != nil {
			return fmt.Errorf("delete messages: %w", err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM jobs WHERE finished_at > 0 AND finished_at < ?`, cutoff)
		if err != nil {
			return fmt.Errorf("delete jobs: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}

// Close implements jobcast.JobStore.
func (s *JobStore) Close() error {
	s.closeStmts()
	return s.db.Close()
}
