package nats

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobcast/jobcast"
)

var _ jobcast.UserStore = (*UserStore)(nil)

// Keys of the users bucket.
const (
	userKeyPrefix  = "user."
	tokenKeyPrefix = "token."
)

// UserStore is the cluster jobcast.UserStore: one KV bucket that every node
// reads, so a user created or revoked through any node is known to all.
// user.<name> holds the user (with its token hash); token.<hash> holds the
// name, the index a sign-in looks up. A token entry is believed only when
// the user it names still holds that hash, so an index entry left behind
// by a half-done create or delete never signs anyone in.
type UserStore struct {
	kv jetstream.KeyValue
}

// userRecord is a user as stored: unlike jobcast.User's JSON, it keeps the
// token hash.
type userRecord struct {
	Name      string       `json:"name"`
	Role      jobcast.Role `json:"role"`
	CreatedAt int64        `json:"createdAtNs"`
	TokenHash string       `json:"tokenHash"`
}

// NewUserStore creates or updates the bucket and returns a store on nc.
// The caller owns nc: Close leaves it open.
func NewUserStore(ctx context.Context, nc *natsgo.Conn, cfg KVConfig) (*UserStore, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	kv, err := openBucket(ctx, js, cfg.name("USERS"), "jobcast dashboard and API users (token hashes only)", cfg)
	if err != nil {
		return nil, err
	}
	return &UserStore{kv: kv}, nil
}

func (r *userRecord) user() *jobcast.User {
	return &jobcast.User{Name: r.Name, Role: r.Role, CreatedAt: time.Unix(0, r.CreatedAt).UTC(), TokenHash: r.TokenHash}
}

// CreateUser implements jobcast.UserStore.
func (s *UserStore) CreateUser(ctx context.Context, u jobcast.User) error {
	if !validHash(u.TokenHash) {
		return fmt.Errorf("create user %s: token hash is not hex SHA-256", u.Name)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	data, err := json.Marshal(&userRecord{Name: u.Name, Role: u.Role, CreatedAt: u.CreatedAt.UnixNano(), TokenHash: u.TokenHash})
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	key := userKeyPrefix + keyPart(u.Name)
	if _, err := s.kv.Create(ctx, key, data); err != nil {
		if isConflict(err) {
			return jobcast.ErrUserExists
		}
		return fmt.Errorf("create user: %w", err)
	}
	if _, err := s.kv.Put(ctx, tokenKeyPrefix+u.TokenHash, []byte(u.Name)); err != nil {
		// Without its index entry the user could never sign in: undo.
		_ = s.kv.Purge(ctx, key)
		return fmt.Errorf("create user: index token: %w", err)
	}
	return nil
}

// ListUsers implements jobcast.UserStore.
func (s *UserStore) ListUsers(ctx context.Context) ([]jobcast.User, error) {
	entries, err := loadAll(ctx, s.kv, userKeyPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	out := []jobcast.User{}
	for _, e := range entries {
		var r userRecord
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			return nil, fmt.Errorf("list users: decode: %w", err)
		}
		out = append(out, *r.user())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (s *UserStore) get(ctx context.Context, name string) (*userRecord, uint64, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	e, err := s.kv.Get(ctx, userKeyPrefix+keyPart(name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, jobcast.ErrUserNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read user: %w", err)
	}
	var r userRecord
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, 0, fmt.Errorf("read user: decode: %w", err)
	}
	return &r, e.Revision(), nil
}

// GetUser implements jobcast.UserStore.
func (s *UserStore) GetUser(ctx context.Context, name string) (*jobcast.User, error) {
	r, _, err := s.get(ctx, name)
	if err != nil {
		return nil, err
	}
	return r.user(), nil
}

// UserByTokenHash implements jobcast.UserStore.
func (s *UserStore) UserByTokenHash(ctx context.Context, hash string) (*jobcast.User, error) {
	if !validHash(hash) {
		return nil, jobcast.ErrUserNotFound
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	e, err := s.kv.Get(ctx, tokenKeyPrefix+hash)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, jobcast.ErrUserNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read user by token: %w", err)
	}
	r, _, err := s.get(ctx, string(e.Value()))
	if err != nil {
		return nil, err
	}
	if r.TokenHash != hash {
		// The name was revoked and taken again with another token.
		return nil, jobcast.ErrUserNotFound
	}
	return r.user(), nil
}

// DeleteUser implements jobcast.UserStore. The user entry goes first: from
// then on its token entry, if the second purge fails, names no user that
// holds the token.
func (s *UserStore) DeleteUser(ctx context.Context, name string) error {
	r, rev, err := s.get(ctx, name)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if err := s.kv.Purge(ctx, userKeyPrefix+keyPart(name), jetstream.LastRevision(rev)); err != nil {
		if isConflict(err) {
			return jobcast.ErrUserNotFound // deleted (and perhaps re-created) meanwhile
		}
		return fmt.Errorf("delete user: %w", err)
	}
	if err := s.kv.Purge(ctx, tokenKeyPrefix+r.TokenHash); err != nil {
		return fmt.Errorf("delete user: token index: %w", err)
	}
	return nil
}

// Close implements io.Closer; the caller owns the connection.
func (s *UserStore) Close() error { return nil }

// validHash reports a hex SHA-256, the only thing a token key may hold.
func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}
