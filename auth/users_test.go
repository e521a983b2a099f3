package auth_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/internal/clocktest"
)

// memUsers is a map UserStore that counts lookups and can fail.
type memUsers struct {
	mu      sync.Mutex
	users   map[string]jobcast.User
	lookups int
	fail    error
}

func (m *memUsers) CreateUser(_ context.Context, u jobcast.User) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.users[u.Name]; ok {
		return jobcast.ErrUserExists
	}
	m.users[u.Name] = u
	return nil
}

func (m *memUsers) ListUsers(context.Context) ([]jobcast.User, error) { return nil, nil }

func (m *memUsers) GetUser(_ context.Context, name string) (*jobcast.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lookups++
	if m.fail != nil {
		return nil, m.fail
	}
	u, ok := m.users[name]
	if !ok {
		return nil, jobcast.ErrUserNotFound
	}
	return &u, nil
}

func (m *memUsers) UserByTokenHash(_ context.Context, hash string) (*jobcast.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lookups++
	if m.fail != nil {
		return nil, m.fail
	}
	for _, u := range m.users {
		if u.TokenHash == hash {
			return &u, nil
		}
	}
	return nil, jobcast.ErrUserNotFound
}

func (m *memUsers) DeleteUser(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.users, name)
	return nil
}

func (m *memUsers) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lookups
}

func TestAuthenticator(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	clock := clocktest.New(t0)
	store := &memUsers{users: map[string]jobcast.User{}}
	tok, hash, _ := jobcast.NewUserToken()
	if err := store.CreateUser(ctx, jobcast.User{Name: "vera", Role: jobcast.RoleViewer, CreatedAt: t0, TokenHash: hash}); err != nil {
		t.Fatal(err)
	}
	const admin = "jca_the-admin-token-0123456789"
	a := auth.NewAuthenticator(admin, store, clock, 5*time.Second)

	for _, c := range []struct {
		secret string
		want   auth.Principal
		ok     bool
	}{
		{admin, auth.Principal{Name: "admin", Role: jobcast.RoleAdmin}, true},
		{tok, auth.Principal{Name: "vera", Role: jobcast.RoleViewer, CreatedAt: t0}, true},
		{"", auth.Principal{}, false},
		{admin + "x", auth.Principal{}, false},
		{tok + "x", auth.Principal{}, false},
		{hash, auth.Principal{}, false}, // the stored hash is not a token
		{"jcu_", auth.Principal{}, false},
	} {
		p, ok, err := a.Authenticate(ctx, c.secret)
		if err != nil || ok != c.ok || p != c.want {
			t.Errorf("Authenticate(%.8q…) = %+v %v %v, want %+v %v", c.secret, p, ok, err, c.want, c.ok)
		}
	}
	if p, ok, _ := a.Session(ctx, "vera", t0); !ok || p.Role != jobcast.RoleViewer {
		t.Errorf("session of vera: %+v %v", p, ok)
	}
	if _, ok, _ := a.Session(ctx, "vera", t0.Add(time.Nanosecond)); ok {
		t.Error("a session of an older vera is accepted")
	}
	if p, ok, _ := a.Session(ctx, "admin", time.Time{}); !ok || p.Role != jobcast.RoleAdmin {
		t.Errorf("admin session: %+v %v", p, ok)
	}

	// Revoked: the cache holds for less than its lifetime, then the token
	// and the session stop working, with no sleep (the clock is injected).
	n := store.count()
	if err := store.DeleteUser(ctx, "vera"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(5*time.Second - time.Millisecond)
	if _, ok, _ := a.Authenticate(ctx, tok); !ok {
		t.Error("token refused within the cache lifetime (the cache did not hold)")
	}
	if _, ok, _ := a.Session(ctx, "vera", t0); !ok {
		t.Error("session refused within the cache lifetime (the cache did not hold)")
	}
	if store.count() != n {
		t.Errorf("%d store lookups within the cache lifetime", store.count()-n)
	}
	clock.Advance(time.Millisecond)
	if _, ok, err := a.Authenticate(ctx, tok); ok || err != nil {
		t.Errorf("revoked token after the cache lifetime: %v %v", ok, err)
	}
	if _, ok, err := a.Session(ctx, "vera", t0); ok || err != nil {
		t.Errorf("revoked user's session after the cache lifetime: %v %v", ok, err)
	}

	// Forget makes a revocation on this node take effect at once.
	tok2, hash2, _ := jobcast.NewUserToken()
	_ = store.CreateUser(ctx, jobcast.User{Name: "ada", Role: jobcast.RoleAdmin, CreatedAt: t0, TokenHash: hash2})
	if _, ok, _ := a.Authenticate(ctx, tok2); !ok {
		t.Fatal("new user refused")
	}
	_ = store.DeleteUser(ctx, "ada")
	a.Forget("ada")
	if _, ok, _ := a.Authenticate(ctx, tok2); ok {
		t.Error("forgotten user still accepted")
	}

	// A failing store: the admin token still works; users get the error.
	store.fail = errors.New("disk on fire")
	if _, ok, err := a.Authenticate(ctx, admin); !ok || err != nil {
		t.Errorf("admin token with a failing store: %v %v", ok, err)
	}
	if _, ok, err := a.Authenticate(ctx, tok2); ok || err == nil {
		t.Errorf("user token with a failing store: %v %v", ok, err)
	}

	// Without a store only the admin token is known.
	none := auth.NewAuthenticator(admin, nil, nil, 0)
	if _, ok, _ := none.Authenticate(ctx, tok); ok {
		t.Error("user token without a store")
	}
	if _, ok, _ := none.Authenticate(ctx, admin); !ok {
		t.Error("admin token without a store")
	}
}
