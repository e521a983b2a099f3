package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jobcast/jobcast"
)

var _ jobcast.AlertStore = (*AlertStore)(nil)

// alertMigrations create the alerting tables. They are counted in a table of
// their own, alert_schema, and not in user_version, which the job tables'
// migrations own: each part of the schema migrates on its own.
var alertMigrations = []string{
	`CREATE TABLE alert_instances (
		fingerprint TEXT PRIMARY KEY,
		data        BLOB NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE alert_silences (
		id      TEXT PRIMARY KEY,
		ends_at INTEGER NOT NULL,
		data    BLOB NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE alert_notifications (
		id   INTEGER PRIMARY KEY AUTOINCREMENT,
		at   INTEGER NOT NULL,
		data BLOB NOT NULL
	);
	CREATE INDEX alert_notifications_at ON alert_notifications(at);
	CREATE TABLE alert_rules (
		id  INTEGER PRIMARY KEY CHECK (id = 1),
		doc TEXT NOT NULL
	);`,
}

// AlertStore is the SQLite jobcast.AlertStore. Rows hold JSON; the
// alerting service reads them all at start and writes what changed after
// each evaluation, so no query needs more than the primary key and time.
type AlertStore struct {
	db    *DB
	owned bool
}

// NewAlertStore migrates the alert tables of db and returns a store on it.
// Closing the store leaves db open.
func NewAlertStore(ctx context.Context, db *DB) (*AlertStore, error) {
	if err := migrateAlerts(ctx, db.write); err != nil {
		return nil, err
	}
	return &AlertStore{db: db}, nil
}

// OpenAlertStore opens the database at path (the node's jobcast.db) and
// returns its AlertStore; closing it closes that handle.
func OpenAlertStore(ctx context.Context, path string) (*AlertStore, error) {
	db, err := Open(ctx, path)
	if err != nil {
		return nil, err
	}
	s, err := NewAlertStore(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
}

func migrateAlerts(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate alert tables: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS alert_schema (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate alert tables: %w", err)
	}
	var version int
	err = tx.QueryRowContext(ctx, `SELECT version FROM alert_schema`).Scan(&version)
	switch {
	case err == sql.ErrNoRows:
		if _, err := tx.ExecContext(ctx, `INSERT INTO alert_schema (version) VALUES (0)`); err != nil {
			return fmt.Errorf("migrate alert tables: %w", err)
		}
	case err != nil:
		return fmt.Errorf("migrate alert tables: %w", err)
	}
	if version > len(alertMigrations) {
		return fmt.Errorf("alert tables have schema version %d, newer than this jobcast (%d)", version, len(alertMigrations))
	}
	for i := version; i < len(alertMigrations); i++ {
		if _, err := tx.ExecContext(ctx, alertMigrations[i]); err != nil {
			return fmt.Errorf("migrate alert tables to version %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE alert_schema SET version = ?`, len(alertMigrations)); err != nil {
		return fmt.Errorf("migrate alert tables: %w", err)
	}
	return tx.Commit()
}

// LoadAlerts implements jobcast.AlertStore.
func (s *AlertStore) LoadAlerts(ctx context.Context) ([]jobcast.AlertInstance, error) {
	rows, err := s.db.read.QueryContext(ctx, `SELECT data FROM alert_instances ORDER BY fingerprint`)
	if err != nil {
		return nil, fmt.Errorf("load alerts: %w", err)
	}
	defer rows.Close()
	var out []jobcast.AlertInstance
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("load alerts: %w", err)
		}
		var a jobcast.AlertInstance
		if err := json.Unmarshal(data, &a); err != nil {
			return nil, fmt.Errorf("load alerts: decode: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// SaveAlerts implements jobcast.AlertStore.
func (s *AlertStore) SaveAlerts(ctx context.Context, put []jobcast.AlertInstance, del []string) error {
	if len(put) == 0 && len(del) == 0 {
		return nil
	}
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save alerts: %w", err)
	}
	defer tx.Rollback()
	for _, a := range put {
		data, err := json.Marshal(&a)
		if err != nil {
			return fmt.Errorf("save alerts: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO alert_instances (fingerprint, data) VALUES (?, ?)
			ON CONFLICT (fingerprint) DO UPDATE SET data = excluded.data`, a.Fingerprint, data); err != nil {
			return fmt.Errorf("save alerts: %w", err)
		}
	}
	for _, fp := range del {
		if _, err := tx.ExecContext(ctx, `DELETE FROM alert_instances WHERE fingerprint = ?`, fp); err != nil {
			return fmt.Errorf("save alerts: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save alerts: %w", err)
	}
	return nil
}

// ListSilences implements jobcast.AlertStore.
func (s *AlertStore) ListSilences(ctx context.Context) ([]jobcast.Silence, error) {
	rows, err := s.db.read.QueryContext(ctx, `SELECT data FROM alert_silences ORDER BY ends_at DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("list silences: %w", err)
	}
	defer rows.Close()
	var out []jobcast.Silence
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("list silences: %w", err)
		}
		var sil jobcast.Silence
		if err := json.Unmarshal(data, &sil); err != nil {
			return nil, fmt.Errorf("list silences: decode: %w", err)
		}
		out = append(out, sil)
	}
	return out, rows.Err()
}

// PutSilence implements jobcast.AlertStore.
func (s *AlertStore) PutSilence(ctx context.Context, sil jobcast.Silence) error {
	data, err := json.Marshal(&sil)
	if err != nil {
		return fmt.Errorf("put silence: %w", err)
	}
	if _, err := s.db.write.ExecContext(ctx, `INSERT INTO alert_silences (id, ends_at, data) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET ends_at = excluded.ends_at, data = excluded.data`,
		sil.ID, sil.EndsAt.UnixMilli(), data); err != nil {
		return fmt.Errorf("put silence: %w", err)
	}
	return nil
}

// DeleteSilencesEndedBefore implements jobcast.AlertStore.
func (s *AlertStore) DeleteSilencesEndedBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.db.write.ExecContext(ctx, `DELETE FROM alert_silences WHERE ends_at < ?`, t.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("delete silences: %w", err)
	}
	return res.RowsAffected()
}

// AppendNotification implements jobcast.AlertStore.
func (s *AlertStore) AppendNotification(ctx context.Context, r jobcast.NotificationRecord) (int64, error) {
	r.ID = 0
	data, err := json.Marshal(&r)
	if err != nil {
		return 0, fmt.Errorf("append notification: %w", err)
	}
	res, err := s.db.write.ExecContext(ctx, `INSERT INTO alert_notifications (at, data) VALUES (?, ?)`, r.At.UnixMilli(), data)
	if err != nil {
		return 0, fmt.Errorf("append notification: %w", err)
	}
	return res.LastInsertId()
}

// ListNotifications implements jobcast.AlertStore.
func (s *AlertStore) ListNotifications(ctx context.Context, limit int) ([]jobcast.NotificationRecord, error) {
	rows, err := s.db.read.QueryContext(ctx, `SELECT id, data FROM alert_notifications ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	defer rows.Close()
	out := []jobcast.NotificationRecord{}
	for rows.Next() {
		var id int64
		var data []byte
		if err := rows.Scan(&id, &data); err != nil {
			return nil, fmt.Errorf("list notifications: %w", err)
		}
		var r jobcast.NotificationRecord
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, fmt.Errorf("list notifications: decode: %w", err)
		}
		r.ID = id
		out = append(out, r)
	}
	return out, rows.Err()
}

// DeleteNotificationsBefore implements jobcast.AlertStore.
func (s *AlertStore) DeleteNotificationsBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.db.write.ExecContext(ctx, `DELETE FROM alert_notifications WHERE at < ?`, t.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("delete notifications: %w", err)
	}
	return res.RowsAffected()
}

// APIRules implements jobcast.AlertStore.
func (s *AlertStore) APIRules(ctx context.Context) (string, error) {
	var doc string
	err := s.db.read.QueryRowContext(ctx, `SELECT doc FROM alert_rules WHERE id = 1`).Scan(&doc)
	if err == sql.ErrNoRows {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read API rules: %w", err)
	}
	return doc, nil
}

// SetAPIRules implements jobcast.AlertStore.
func (s *AlertStore) SetAPIRules(ctx context.Context, doc string) error {
	if _, err := s.db.write.ExecContext(ctx, `INSERT INTO alert_rules (id, doc) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET doc = excluded.doc`, doc); err != nil {
		return fmt.Errorf("write API rules: %w", err)
	}
	return nil
}

// Close closes the database if the store opened it.
func (s *AlertStore) Close() error {
	if s.owned {
		return s.db.Close()
	}
	return nil
}
