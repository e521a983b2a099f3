package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DB is an open jobcast SQLite database: one connection for writes (SQLite
// allows one writer at a time; queuing in Go is cheaper than busy retries),
// a pool for reads, and one connection that checkpoints the WAL in the
// background.
type DB struct {
	path  string
	write *sql.DB
	read  *sql.DB

	// The writer does not checkpoint (wal_autocheckpoint 0): SQLite's
	// automatic checkpoint runs inside the COMMIT that crosses 1,000 WAL
	// pages and fsyncs the WAL and the database there, so every write
	// queued behind that commit waited for two fsyncs (tens of
	// milliseconds: the fan-out benchmark's p99). A PASSIVE checkpoint on
	// its own connection copies committed pages without blocking the
	// writer or readers.
	ckpt     *sql.DB
	stopCkpt context.CancelFunc
	ckptDone chan struct{}
}

// CheckpointInterval is how often the background checkpointer copies the
// WAL into the database file; the WAL holds about that much of the write
// load (SQLite's own default is every 1,000 pages, 4 MB).
const CheckpointInterval = time.Second

// migrations are applied in order; user_version records how many ran.
var migrations = []string{
	`CREATE TABLE jobs (
		id          TEXT PRIMARY KEY,
		rev         INTEGER NOT NULL,
		finished_at INTEGER NOT NULL DEFAULT 0,
		data        BLOB NOT NULL
	);
	CREATE INDEX jobs_finished_at ON jobs(finished_at) WHERE finished_at > 0;
	CREATE TABLE messages (
		job_id TEXT NOT NULL,
		seq    INTEGER NOT NULL,
		data   BLOB NOT NULL,
		PRIMARY KEY (job_id, seq)
	) WITHOUT ROWID;`,
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string) (*DB, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		// SQLite in WAL mode writes beside the file even to read; on a
		// read-only data dir it says only "unable to open database
		// file (14)", so find out first and say what is wrong.
		probe, err := os.CreateTemp(dir, ".jobcast-write-probe-*")
		if err != nil {
			return nil, fmt.Errorf("data dir %s is not writable: %w", dir, err)
		}
		probe.Close()
		os.Remove(probe.Name())
	}
	dsn := func(extra string) string {
		q := url.Values{}
		for _, p := range []string{"journal_mode(WAL)", "synchronous(NORMAL)", "busy_timeout(5000)", "foreign_keys(1)"} {
			q.Add("_pragma", p)
		}
		if extra != "" {
			q.Add("_pragma", extra)
		}
		return "file:" + uriPath(path) + "?" + q.Encode()
	}
	write, err := sql.Open("sqlite", dsn("wal_autocheckpoint(0)")+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetConnMaxIdleTime(0)
	db := &DB{path: path, write: write}
	if err := db.migrate(ctx); err != nil {
		write.Close()
		return nil, err
	}
	read, err := sql.Open("sqlite", dsn("query_only(1)"))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open %s for reading: %w", path, err)
	}
	read.SetMaxOpenConns(4)
	db.read = read
	ckpt, err := sql.Open("sqlite", dsn(""))
	if err != nil {
		read.Close()
		write.Close()
		return nil, fmt.Errorf("open %s for checkpoints: %w", path, err)
	}
	ckpt.SetMaxOpenConns(1)
	db.ckpt = ckpt
	cctx, cancel := context.WithCancel(context.Background())
	db.stopCkpt, db.ckptDone = cancel, make(chan struct{})
	go db.checkpointLoop(cctx, CheckpointInterval)
	return db, nil
}

// Checkpoint copies the committed WAL pages into the database file
// (PASSIVE: it neither waits for nor blocks the writer and readers) and
// reports the WAL's length and how much of it is now in the database, in
// pages.
func (db *DB) Checkpoint(ctx context.Context) (walPages, checkpointed int, err error) {
	var busy int
	err = db.ckpt.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &walPages, &checkpointed)
	return walPages, checkpointed, err
}

func (db *DB) checkpointLoop(ctx context.Context, every time.Duration) {
	defer close(db.ckptDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// An error (a full disk) is the writer's to report; the next
		// round tries again.
		_, _, _ = db.Checkpoint(ctx)
	}
}

// uriPath escapes the characters that have a meaning in a SQLite URI
// filename, so that a data dir named "a#b" or "50%" opens that file and not
// a truncated name (with the pragmas lost after a stray '?').
func uriPath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(path)
}

func (db *DB) migrate(ctx context.Context) error {
	var version int
	if err := db.write.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("open %s: %w", db.path, err)
	}
	if version > len(migrations) {
		return fmt.Errorf("database %s has schema version %d, newer than this jobcast (%d)", db.path, version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		tx, err := db.write.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate to version %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, i+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate to version %d: %w", i+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate to version %d: %w", i+1, err)
		}
	}
	return nil
}

// Close closes the database.
func (db *DB) Close() error {
	var err error
	if db.stopCkpt != nil {
		db.stopCkpt()
		<-db.ckptDone
		err = db.ckpt.Close()
	}
	if db.read != nil {
		err = db.read.Close()
	}
	if e := db.write.Close(); e != nil {
		err = e
	}
	return err
}
