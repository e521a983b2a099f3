package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jobcast/jobcast"
)

var _ jobcast.UserStore = (*UserStore)(nil)

// userMigrations create the users table. They are counted in user_schema,
// as the alert tables are in alert_schema: each part of the schema
// migrates on its own.
var userMigrations = []string{
	`CREATE TABLE users (
		name       TEXT PRIMARY KEY,
		role       TEXT NOT NULL,
		token_hash TEXT NOT NULL UNIQUE,
		created_at INTEGER NOT NULL
	) WITHOUT ROWID;`,
}

// UserStore is the SQLite jobcast.UserStore: one row per user in the
// node's jobcast.db, the token kept only as its SHA-256.
type UserStore struct {
	db    *DB
	owned bool
}

// NewUserStore migrates the users table of db and returns a store on it.
// Closing the store leaves db open.
func NewUserStore(ctx context.Context, db *DB) (*UserStore, error) {
	if err := migrateUsers(ctx, db.write); err != nil {
		return nil, err
	}
	return &UserStore{db: db}, nil
}

// OpenUserStore opens the database at path (the node's jobcast.db) and
// returns its UserStore; closing it closes that handle.
func OpenUserStore(ctx context.Context, path string) (*UserStore, error) {
	db, err := Open(ctx, path)
	if err != nil {
		return nil, err
	}
	s, err := NewUserStore(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
}

func migrateUsers(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate users table: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS user_schema (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate users table: %w", err)
	}
	var version int
	err = tx.QueryRowContext(ctx, `SELECT version FROM user_schema`).Scan(&version)
	switch {
	case err == sql.ErrNoRows:
		if _, err := tx.ExecContext(ctx, `INSERT INTO user_schema (version) VALUES (0)`); err != nil {
			return fmt.Errorf("migrate users table: %w", err)
		}
	case err != nil:
		return fmt.Errorf("migrate users table: %w", err)
	}
	if version > len(userMigrations) {
		return fmt.Errorf("users table has schema version %d, newer than this jobcast (%d)", version, len(userMigrations))
	}
	for i := version; i < len(userMigrations); i++ {
		if _, err := tx.ExecContext(ctx, userMigrations[i]); err != nil {
			return fmt.Errorf("migrate users table to version %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE user_schema SET version = ?`, len(userMigrations)); err != nil {
		return fmt.Errorf("migrate users table: %w", err)
	}
	return tx.Commit()
}

// CreateUser implements jobcast.UserStore.
func (s *UserStore) CreateUser(ctx context.Context, u jobcast.User) error {
	_, err := s.db.write.ExecContext(ctx, `INSERT INTO users (name, role, token_hash, created_at) VALUES (?, ?, ?, ?)`,
		u.Name, string(u.Role), u.TokenHash, u.CreatedAt.UnixNano())
	if err != nil {
		if isUniqueViolation(err) {
			return jobcast.ErrUserExists
		}
		return fmt.Errorf("create user: %w", err)
	}
	return nil
}

// isUniqueViolation reports a primary key or UNIQUE constraint failure
// (SQLITE_CONSTRAINT_PRIMARYKEY or _UNIQUE), which the driver reports in
// its message.
func isUniqueViolation(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "PRIMARY KEY")
}

const userColumns = `name, role, token_hash, created_at`

func scanUser(sc interface{ Scan(...any) error }) (*jobcast.User, error) {
	var (
		u       jobcast.User
		role    string
		created int64
	)
	if err := sc.Scan(&u.Name, &role, &u.TokenHash, &created); err != nil {
		return nil, err
	}
	u.Role, u.CreatedAt = jobcast.Role(role), time.Unix(0, created).UTC()
	return &u, nil
}

// ListUsers implements jobcast.UserStore.
func (s *UserStore) ListUsers(ctx context.Context) ([]jobcast.User, error) {
	rows, err := s.db.read.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	out := []jobcast.User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, *u)
	}
	return out, rows.Err()
}

func (s *UserStore) one(ctx context.Context, where string, arg string) (*jobcast.User, error) {
	u, err := scanUser(s.db.read.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE `+where+` = ?`, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, jobcast.ErrUserNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read user: %w", err)
	}
	return u, nil
}

// GetUser implements jobcast.UserStore.
func (s *UserStore) GetUser(ctx context.Context, name string) (*jobcast.User, error) {
	return s.one(ctx, "name", name)
}

// UserByTokenHash implements jobcast.UserStore.
func (s *UserStore) UserByTokenHash(ctx context.Context, hash string) (*jobcast.User, error) {
	if hash == "" {
		return nil, jobcast.ErrUserNotFound
	}
	return s.one(ctx, "token_hash", hash)
}

// DeleteUser implements jobcast.UserStore.
func (s *UserStore) DeleteUser(ctx context.Context, name string) error {
	res, err := s.db.write.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return jobcast.ErrUserNotFound
	}
	return nil
}

// Close closes the database if the store opened it.
func (s *UserStore) Close() error {
	if s.owned {
		return s.db.Close()
	}
	return nil
}
