package auth

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

// Token verification errors. All carry catalog codes; ErrWrongJob maps to
// HTTP 403 and close code 4003, the others to 401 and 4001/4003.
var (
	ErrTokenExpired = &jobcast.Error{Code: protocol.ErrTokenExpired, Message: "token expired"}
	ErrTokenInvalid = &jobcast.Error{Code: protocol.ErrTokenInvalid, Message: "token invalid"}
	ErrWrongJob     = &jobcast.Error{Code: protocol.ErrTokenInvalid, Message: "token is not valid for this job"}
	ErrTokenRevoked = &jobcast.Error{Code: protocol.ErrTokenInvalid, Message: "token revoked"}
	ErrNoToken      = &jobcast.Error{Code: protocol.ErrTokenInvalid, Message: "no token: send it as Authorization: Bearer, ?token=, the bearer.<token> subprotocol, or in a hello frame"}
)

// Tokens issues and verifies client tokens.
type Tokens struct {
	ring  *Keyring
	ttl   time.Duration
	clock jobcast.Clock

	// verified remembers the claims of tokens whose signature checked out,
	// keyed by a hash of the whole token text, so that a client reconnecting with the
	// same token (every reconnect, every page of a dashboard) skips the
	// base64, JSON and HMAC work: 8 % of a server's CPU under connection
	// churn. The keyring never changes in a running process and the text
	// is what was signed, so a hit is the same verdict; expiry and the job
	// are still checked on every call. Only good tokens get in, and at most
	// verifiedCacheSize of them.
	mu       sync.Mutex
	verified map[[sha256.Size]byte]Claims
}

// tokenKey is the verified-token cache's key: the SHA-256 of the whole
// token, 32 bytes instead of the ≈ 200-byte text (whose string, a slice of
// the request's header block, would keep that block alive), and as
// collision-resistant as the text itself for telling tokens apart.
func tokenKey(raw string) [sha256.Size]byte {
	return sha256.Sum256([]byte(raw))
}

// verifiedCacheSize bounds the verified-token cache (a few MB of tokens).
const verifiedCacheSize = 16384

// NewTokens returns a token service signing with ring's current key.
func NewTokens(ring *Keyring, ttl time.Duration, clock jobcast.Clock) *Tokens {
	return &Tokens{ring: ring, ttl: ttl, clock: clock, verified: make(map[[sha256.Size]byte]Claims)}
}

// Claims are what a verified token says.
type Claims struct {
	JobID    string
	IssuedAt time.Time // zero when the token has no iat
	Expires  time.Time
}

// Issue mints a token for jobID, valid for the configured TTL.
func (t *Tokens) Issue(jobID string) (string, time.Time, error) {
	now := t.clock.Now()
	exp := now.Add(t.ttl)
	key := t.ring.Current()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   jobID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		IssuedAtMs: now.UnixMilli(),
	})
	tok.Header["kid"] = key.ID
	s, err := tok.SignedString(key.Secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return s, exp.Truncate(time.Second), nil
}

// Verify checks the token's signature and expiry, and that it opens jobID
// (any job when jobID is empty). The returned errors are the ones above.
func (t *Tokens) Verify(raw, jobID string) (*Claims, error) {
	if raw == "" {
		return nil, ErrNoToken
	}
	key := tokenKey(raw)
	t.mu.Lock()
	c, ok := t.verified[key]
	t.mu.Unlock()
	if ok {
		// As the parser checks exp: valid while now is before it.
		if !t.clock.Now().Before(c.Expires) {
			t.mu.Lock()
			delete(t.verified, key)
			t.mu.Unlock()
			return nil, ErrTokenExpired
		}
		if jobID != "" && c.JobID != jobID {
			return nil, ErrWrongJob
		}
		return &c, nil
	}
	var tc tokenClaims
	rc := &tc.RegisteredClaims
	_, err := jwt.ParseWithClaims(raw, &tc, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		if kid == "" {
			return t.ring.Current().Secret, nil
		}
		k, ok := t.ring.Lookup(kid)
		if !ok {
			return nil, errors.New("unknown kid")
		}
		return k.Secret, nil
	},
		jwt.WithValidMethods([]string{"HS256", "HS384", "HS512"}),
		jwt.WithTimeFunc(t.clock.Now),
		jwt.WithExpirationRequired(),
	)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, ErrTokenExpired
		}
		return nil, ErrTokenInvalid
	}
	if rc.Subject == "" {
		return nil, ErrTokenInvalid
	}
	if jobID != "" && rc.Subject != jobID {
		return nil, ErrWrongJob
	}
	c = Claims{JobID: rc.Subject, Expires: rc.ExpiresAt.Time}
	switch {
	case tc.IssuedAtMs > 0:
		c.IssuedAt = time.UnixMilli(tc.IssuedAtMs)
	case rc.IssuedAt != nil:
		c.IssuedAt = rc.IssuedAt.Time
	}
	t.remember(key, c)
	return &c, nil
}

// remember caches a verified token's claims, evicting an arbitrary entry
// when full (map iteration order is random).
func (t *Tokens) remember(key [sha256.Size]byte, c Claims) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.verified) >= verifiedCacheSize {
		for k := range t.verified {
			delete(t.verified, k)
			break
		}
	}
	t.verified[key] = c
}

// tokenClaims adds a millisecond issue time to the registered claims: JWT's
// iat has whole seconds, too coarse to tell a token minted just after a
// revocation from one minted just before it. Tokens minted elsewhere carry
// only iat and are compared by it.
type tokenClaims struct {
	jwt.RegisteredClaims
	IssuedAtMs int64 `json:"iat_ms,omitempty"`
}

// Revoked reports whether a token with these claims was revoked for job: it
// was issued before the job's TokensNotBefore. A token without any issue
// time counts as issued at the beginning of time.
func Revoked(c *Claims, job *jobcast.Job) bool {
	return !job.TokensNotBefore.IsZero() && c.IssuedAt.Before(job.TokensNotBefore)
}
