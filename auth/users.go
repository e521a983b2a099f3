package auth

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/jobcast/jobcast"
)

// Principal is who a request speaks for: the admin token, or a user.
type Principal struct {
	Name string
	Role jobcast.Role
	// CreatedAt is the user's creation time (zero for the admin token). A
	// dashboard session carries it, so that a session of a revoked user
	// does not come back when the name is taken again.
	CreatedAt time.Time
}

// DefaultUserCacheTTL is how long an Authenticator believes a lookup: a
// revoked user's token and sessions stop working within it on every node.
const DefaultUserCacheTTL = 5 * time.Second

// maxCached bounds each cache; past it expired entries are swept, and if
// that is not enough the cache starts over.
const maxCached = 4096

// Authenticator turns a Bearer secret or a dashboard session's user name
// into a Principal. The admin token is compared in constant time; user
// tokens are looked up by their SHA-256, which says nothing about the
// token through timing. Lookups are cached for a few seconds so that
// every API call does not read the store, and for no longer, so that a
// revocation through any node takes effect on all of them within that.
type Authenticator struct {
	adminToken string
	store      jobcast.UserStore
	clock      jobcast.Clock
	ttl        time.Duration

	mu     sync.Mutex
	byHash map[string]cachedPrincipal
	byName map[string]cachedPrincipal
}

type cachedPrincipal struct {
	p       Principal
	ok      bool
	expires time.Time
}

// NewAuthenticator returns an authenticator for the admin token and the
// users of store (nil: the admin token only). ttl <= 0 means
// DefaultUserCacheTTL.
func NewAuthenticator(adminToken string, store jobcast.UserStore, clock jobcast.Clock, ttl time.Duration) *Authenticator {
	if ttl <= 0 {
		ttl = DefaultUserCacheTTL
	}
	if clock == nil {
		clock = jobcast.SystemClock{}
	}
	return &Authenticator{adminToken: adminToken, store: store, clock: clock, ttl: ttl,
		byHash: map[string]cachedPrincipal{}, byName: map[string]cachedPrincipal{}}
}

// AdminPrincipal is the principal of the admin token.
func AdminPrincipal() Principal { return Principal{Name: jobcast.AdminName, Role: jobcast.RoleAdmin} }

// Authenticate returns the principal of a Bearer secret; ok is false for an
// unknown secret or a revoked user. err is a store failure (the admin
// token still works then).
func (a *Authenticator) Authenticate(ctx context.Context, secret string) (p Principal, ok bool, err error) {
	if secret == "" {
		return Principal{}, false, nil
	}
	if EqualSecret(secret, a.adminToken) {
		return AdminPrincipal(), true, nil
	}
	if a.store == nil || !strings.HasPrefix(secret, jobcast.UserTokenPrefix) {
		return Principal{}, false, nil
	}
	hash := jobcast.HashUserToken(secret)
	now := a.clock.Now()
	if c, hit := a.cached(a.byHash, hash, now); hit {
		return c.p, c.ok, nil
	}
	u, err := a.store.UserByTokenHash(ctx, hash)
	if errors.Is(err, jobcast.ErrUserNotFound) {
		// Unknown tokens are not cached: anyone may send many, and a user
		// just created must work at once.
		return Principal{}, false, nil
	}
	if err != nil {
		return Principal{}, false, err
	}
	p = Principal{Name: u.Name, Role: u.Role, CreatedAt: u.CreatedAt}
	a.remember(a.byHash, hash, cachedPrincipal{p: p, ok: true, expires: now.Add(a.ttl)}, now)
	return p, true, nil
}

// Session returns the principal of a dashboard session that names the user
// name created at created: ok is false once that user is revoked (or the
// name belongs to a newer user). The admin name with a zero time is the
// admin token's session: sessions are signed with a key derived from the
// token, so it is valid while the token is.
func (a *Authenticator) Session(ctx context.Context, name string, created time.Time) (p Principal, ok bool, err error) {
	if name == jobcast.AdminName && created.IsZero() {
		return AdminPrincipal(), true, nil
	}
	if a.store == nil || name == "" {
		return Principal{}, false, nil
	}
	now := a.clock.Now()
	c, hit := a.cached(a.byName, name, now)
	if !hit {
		u, err := a.store.GetUser(ctx, name)
		switch {
		case errors.Is(err, jobcast.ErrUserNotFound):
			// Only signed sessions ask, so the names are few: a miss is
			// cached too.
			c = cachedPrincipal{expires: now.Add(a.ttl)}
		case err != nil:
			return Principal{}, false, err
		default:
			c = cachedPrincipal{p: Principal{Name: u.Name, Role: u.Role, CreatedAt: u.CreatedAt}, ok: true, expires: now.Add(a.ttl)}
		}
		a.remember(a.byName, name, c, now)
	}
	if !c.ok || !c.p.CreatedAt.Equal(created) {
		return Principal{}, false, nil
	}
	return c.p, true, nil
}

// Forget drops what the cache holds about a user, so that a revocation
// through this node takes effect here at once (other nodes take up to the
// cache lifetime).
func (a *Authenticator) Forget(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.byName, name)
	for k, c := range a.byHash {
		if c.p.Name == name {
			delete(a.byHash, k)
		}
	}
}

func (a *Authenticator) cached(m map[string]cachedPrincipal, key string, now time.Time) (cachedPrincipal, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, hit := m[key]
	if !hit || !now.Before(c.expires) {
		return cachedPrincipal{}, false
	}
	return c, true
}

func (a *Authenticator) remember(m map[string]cachedPrincipal, key string, c cachedPrincipal, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(m) >= maxCached {
		for k, old := range m {
			if !now.Before(old.expires) {
				delete(m, k)
			}
		}
		if len(m) >= maxCached {
			clear(m)
		}
	}
	m[key] = c
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p, for handlers behind an auth check.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal an auth check put in ctx.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
