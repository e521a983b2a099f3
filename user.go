package jobcast

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Role is what a signed-in person may do. There are two, so that a team
// can watch the dashboard without holding the one secret that changes
// things.
type Role string

const (
	// RoleViewer reads: the dashboard, GraphQL, /metrics and the GET side
	// of the metrics, alerts, experiments and connections APIs.
	RoleViewer Role = "viewer"
	// RoleAdmin also changes things: experiments, alert rules and
	// silences, SQL, users, pprof.
	RoleAdmin Role = "admin"
)

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	switch r := Role(strings.ToLower(strings.TrimSpace(s))); r {
	case RoleViewer, RoleAdmin:
		return r, nil
	}
	return "", Errorf("E_BAD_REQUEST", "role %q: use viewer or admin", s)
}

// Allows reports whether a principal with role r may use a surface that
// needs role need: admin may do everything a viewer may.
func (r Role) Allows(need Role) bool {
	switch r {
	case RoleAdmin:
		return need == RoleAdmin || need == RoleViewer
	case RoleViewer:
		return need == RoleViewer
	}
	return false
}

// CodeForbidden answers a caller who is known but whose role does not
// allow the request (a viewer on an admin route), or a browser request
// that fails the CSRF check: HTTP 403. The protocol catalog has no such
// code because clients never see it; it is HTTP-only.
const CodeForbidden = "E_FORBIDDEN"

// AdminName is the principal name of the admin token. No user may take it,
// so that "admin" in a log or the dashboard header always means the token.
const AdminName = "admin"

// UserTokenPrefix starts every user token, so that a leaked one is
// recognisable (secret scanners) and never mistaken for the admin token
// (jca_) or a producer key (jc_).
const UserTokenPrefix = "jcu_"

// User is a named person or machine with a role and a token of its own.
// The token itself is never stored: only its SHA-256 (TokenHash), so a
// copy of the store cannot sign anyone in.
type User struct {
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"createdAt"`
	// TokenHash is the hex SHA-256 of the user's token. It never leaves
	// the server (json:"-").
	TokenHash string `json:"-"`
}

// UserStore keeps the users. Every node of a cluster reads the same store,
// so a user created or revoked through one node is known to all (within
// the authenticator's cache lifetime).
type UserStore interface {
	// CreateUser adds u; a user of that name already present is
	// ErrUserExists.
	CreateUser(ctx context.Context, u User) error
	// ListUsers returns every user, by name.
	ListUsers(ctx context.Context) ([]User, error)
	// GetUser returns the user named name, or ErrUserNotFound.
	GetUser(ctx context.Context, name string) (*User, error)
	// UserByTokenHash returns the user whose token has the hex SHA-256
	// hash, or ErrUserNotFound.
	UserByTokenHash(ctx context.Context, hash string) (*User, error)
	// DeleteUser revokes the user named name: its token stops working
	// and the name becomes free. ErrUserNotFound if there is none.
	DeleteUser(ctx context.Context, name string) error
}

// Errors of the user store.
var (
	ErrUserNotFound = &Error{Code: "E_NOT_FOUND", Message: "no user with this name"}
	ErrUserExists   = &Error{Code: "E_CONFLICT", Message: "a user with this name already exists"}
)

var userNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// ValidateUserName checks a new user's name: 1 to 64 letters, digits and
// ". _ @ -", starting with a letter or digit (it appears in logs, the
// dashboard header and URLs), and not the admin token's name.
func ValidateUserName(name string) error {
	if !userNameRE.MatchString(name) {
		return Errorf("E_BAD_REQUEST", "user name %q: use 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", name)
	}
	if strings.EqualFold(name, AdminName) {
		return Errorf("E_BAD_REQUEST", "user name %q is reserved for the admin token", name)
	}
	return nil
}

// NewUserToken returns a fresh user token (jcu_ and 32 random bytes,
// base64url) and its hash for the store.
func NewUserToken() (token, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate user token: %w", err)
	}
	token = UserTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashUserToken(token), nil
}

// HashUserToken is the hex SHA-256 of a token: what the store keeps and
// looks users up by. A lookup by hash reveals nothing about the token
// through its timing.
func HashUserToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
