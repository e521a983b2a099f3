package auth_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/protocol"
)

var t0 = time.Date(2025, 11, 26, 5, 0, 0, 0, time.UTC)

func testKey(id string, fill byte) auth.Key {
	return auth.Key{ID: id, Secret: bytes.Repeat([]byte{fill}, 32), CreatedAt: t0}
}

func newRing(t *testing.T, keys ...auth.Key) *auth.Keyring {
	t.Helper()
	r, err := auth.NewKeyring(keys...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return r
}

// mint signs claims with method and key, setting kid when it is not empty.
func mint(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign token: %v", err)
	}
	return s
}

func claimsFor(sub string, iat, exp time.Time) jwt.RegisteredClaims {
	return jwt.RegisteredClaims{Subject: sub, IssuedAt: jwt.NewNumericDate(iat), ExpiresAt: jwt.NewNumericDate(exp)}
}

// wantErr fails t unless err is exactly the sentinel want.
func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if err != want {
		t.Fatalf("error = %v, want %v", err, want)
	}
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(t0.Add(250 * time.Millisecond))
	tokens := auth.NewTokens(newRing(t, testKey("k1", 1)), time.Hour, clock)
	raw, exp, err := tokens.Issue("job-42")
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if !exp.Equal(t0.Add(time.Hour)) {
		t.Fatalf("expiresAt = %v, want %v", exp, t0.Add(time.Hour))
	}
	for _, jobID := range []string{"job-42", ""} {
		c, err := tokens.Verify(raw, jobID)
		if err != nil {
			t.Fatalf("Verify(jobID=%q): %v", jobID, err)
		}
		// iat_ms keeps the issue time to the millisecond; exp is whole seconds.
		if c.JobID != "job-42" || !c.IssuedAt.Equal(t0.Add(250*time.Millisecond)) || !c.Expires.Equal(t0.Add(time.Hour)) {
			t.Fatalf("claims = %+v", c)
		}
	}
	// The header names the signing key, and the algorithm is HS256.
	tok, _, err := jwt.NewParser().ParseUnverified(raw, &jwt.RegisteredClaims{})
	if err != nil {
		t.Fatalf("ParseUnverified: %v", err)
	}
	if tok.Header["kid"] != "k1" || tok.Header["alg"] != "HS256" {
		t.Fatalf("header = %v, want kid k1 and alg HS256", tok.Header)
	}
	// Still valid a second before expiry.
	clock.Advance(time.Hour - 1250*time.Millisecond)
	if _, err := tokens.Verify(raw, "job-42"); err != nil {
		t.Fatalf("Verify just before expiry: %v", err)
	}
}

func TestVerifyErrors(t *testing.T) {
	t.Parallel()
	current, old := testKey("k2", 2), testKey("k1", 1)
	ring := newRing(t, old, current)
	clock := clocktest.New(t0)
	tokens := auth.NewTokens(ring, time.Hour, clock)
	valid := claimsFor("job-1", t0, t0.Add(time.Hour))

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("generate RSA key: %v", err)
	}
	noneToken := mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "k2", valid)
	// An HS256 token whose header claims RS256: the signature is by the
	// current secret, so only the algorithm check can stop it.
	hsAsRS := func() string {
		good := mint(t, jwt.SigningMethodHS256, current.Secret, "k2", valid)
		parts := strings.Split(good, ".")
		parts[0] = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"k2","typ":"JWT"}`))
		return strings.Join(parts, ".")
	}()

	tests := []struct {
		name  string
		raw   string
		jobID string
		want  error
	}{
		{name: "empty", raw: "", jobID: "job-1", want: auth.ErrNoToken},
		{name: "garbage", raw: "not-a-jwt", jobID: "job-1", want: auth.ErrTokenInvalid},
		{name: "three garbage parts", raw: "a.b.c", jobID: "job-1", want: auth.ErrTokenInvalid},
		{name: "alg none", raw: noneToken, jobID: "job-1", want: auth.ErrTokenInvalid},
		{name: "HS256 with a wrong key", raw: mint(t, jwt.SigningMethodHS256, bytes.Repeat([]byte{9}, 32), "k2", valid), jobID: "job-1", want: auth.ErrTokenInvalid},
		{name: "HS256 with a wrong key, no kid", raw: mint(t, jwt.SigningMethodHS256, bytes.Repeat([]byte{9}, 32), "", valid), jobID: "job-1", want: auth.ErrTokenInvalid},
		{name: "RS256", raw: mint(t, jwt.SigningMethodRS256, rsaKey, "k2", valid), jobID: "job-1", want: auth.ErrTokenInvalid},
		{name: "RS256 header on an HMAC signature", raw: hsAsRS, jobID: "job-1", want: auth.ErrTokenInvalid},
		{name: "unknown kid", raw: mint(t, jwt.SigningMethodHS256, current.Secret, "k9", valid), jobID: "job-1", want: auth.ErrTokenInvalid},
		{name: "no kid, signed with an old key", raw: mint(t, jwt.SigningMethodHS256, old.Secret, "", valid), jobID: "job-1", want: auth.ErrTokenInvalid},
		{name: "kid of another key", raw: mint(t, jwt.SigningMethodHS256, old.Secret, "k2", valid), jobID: "job-1", want: auth.ErrTokenInvalid},
		{name: "no subject", raw: mint(t, jwt.SigningMethodHS256, current.Secret, "k2", claimsFor("", t0, t0.Add(time.Hour))), jobID: "", want: auth.ErrTokenInvalid},
		{name: "no expiry", raw: mint(t, jwt.SigningMethodHS256, current.Secret, "k2", jwt.RegisteredClaims{Subject: "job-1"}), jobID: "job-1", want: auth.ErrTokenInvalid},
		{name: "not yet valid", raw: mint(t, jwt.SigningMethodHS256, current.Secret, "k2", jwt.RegisteredClaims{Subject: "job-1", ExpiresAt: jwt.NewNumericDate(t0.Add(time.Hour)), NotBefore: jwt.NewNumericDate(t0.Add(time.Minute))}), jobID: "job-1", want: auth.ErrTokenInvalid},
		{name: "expired", raw: mint(t, jwt.SigningMethodHS256, current.Secret, "k2", claimsFor("job-1", t0.Add(-2*time.Hour), t0.Add(-time.Second))), jobID: "job-1", want: auth.ErrTokenExpired},
		{name: "expired this instant", raw: mint(t, jwt.SigningMethodHS256, current.Secret, "k2", claimsFor("job-1", t0.Add(-time.Hour), t0)), jobID: "job-1", want: auth.ErrTokenExpired},
		{name: "expired and for another job", raw: mint(t, jwt.SigningMethodHS256, current.Secret, "k2", claimsFor("job-2", t0.Add(-2*time.Hour), t0.Add(-time.Second))), jobID: "job-1", want: auth.ErrTokenExpired},
		{name: "expired with a wrong key", raw: mint(t, jwt.SigningMethodHS256, bytes.Repeat([]byte{9}, 32), "k2", claimsFor("job-1", t0.Add(-2*time.Hour), t0.Add(-time.Second))), jobID: "job-1", want: auth.ErrTokenInvalid},
		{name: "wrong job", raw: mint(t, jwt.SigningMethodHS256, current.Secret, "k2", claimsFor("job-2", t0, t0.Add(time.Hour))), jobID: "job-1", want: auth.ErrWrongJob},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := tokens.Verify(tt.raw, tt.jobID)
			if c != nil {
				t.Fatalf("claims %+v returned with error %v", c, err)
			}
			wantErr(t, err, tt.want)
		})
	}
}

func TestVerifyAccepts(t *testing.T) {
	t.Parallel()
	current, old := testKey("k2", 2), testKey("k1", 1)
	tokens := auth.NewTokens(newRing(t, old, current), time.Hour, clocktest.New(t0))
	valid := claimsFor("job-1", t0, t0.Add(time.Hour))
	tests := []struct {
		name string
		raw  string
	}{
		{name: "no kid, current key (external minter)", raw: mint(t, jwt.SigningMethodHS256, current.Secret, "", valid)},
		{name: "old key by kid", raw: mint(t, jwt.SigningMethodHS256, old.Secret, "k1", valid)},
		{name: "HS512", raw: mint(t, jwt.SigningMethodHS512, current.Secret, "k2", valid)},
		{name: "no iat", raw: mint(t, jwt.SigningMethodHS256, current.Secret, "", jwt.RegisteredClaims{Subject: "job-1", ExpiresAt: jwt.NewNumericDate(t0.Add(time.Minute))})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := tokens.Verify(tt.raw, "job-1")
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.JobID != "job-1" {
				t.Fatalf("JobID = %q", c.JobID)
			}
		})
	}
}

func TestVerifyErrorsCarryCatalogCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		code string
	}{
		{auth.ErrTokenExpired, protocol.ErrTokenExpired},
		{auth.ErrTokenInvalid, protocol.ErrTokenInvalid},
		{auth.ErrWrongJob, protocol.ErrTokenInvalid},
		{auth.ErrTokenRevoked, protocol.ErrTokenInvalid},
		{auth.ErrNoToken, protocol.ErrTokenInvalid},
	}
	for _, tt := range tests {
		if got := jobcast.ErrorCode(tt.err); got != tt.code {
			t.Errorf("ErrorCode(%v) = %s, want %s", tt.err, got, tt.code)
		}
	}
	if errors.Is(auth.ErrWrongJob, auth.ErrTokenInvalid) {
		t.Error("ErrWrongJob must be distinguishable from ErrTokenInvalid (403 vs 401)")
	}
}

func TestTokenExpiresWithClock(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(t0)
	tokens := auth.NewTokens(newRing(t, testKey("k1", 1)), 10*time.Minute, clock)
	raw, _, err := tokens.Issue("job-1")
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	clock.Advance(10*time.Minute - time.Second)
	if _, err := tokens.Verify(raw, "job-1"); err != nil {
		t.Fatalf("Verify before expiry: %v", err)
	}
	clock.Advance(time.Second)
	_, err = tokens.Verify(raw, "job-1")
	wantErr(t, err, auth.ErrTokenExpired)
}

func TestRevoked(t *testing.T) {
	t.Parallel()
	nb := t0.Add(time.Second)
	tests := []struct {
		name      string
		issuedAt  time.Time
		notBefore time.Time
		want      bool
	}{
		{name: "never revoked", issuedAt: t0, notBefore: time.Time{}, want: false},
		{name: "issued before revocation", issuedAt: t0, notBefore: nb, want: true},
		{name: "issued at the revocation second", issuedAt: nb, notBefore: nb, want: false},
		{name: "issued after revocation", issuedAt: nb.Add(time.Second), notBefore: nb, want: false},
		{name: "no iat counts as revoked", issuedAt: time.Time{}, notBefore: nb, want: true},
		{name: "no iat, never revoked", issuedAt: time.Time{}, notBefore: time.Time{}, want: false},
	}
	for _, tt := range tests {
		c := &auth.Claims{JobID: "job-1", IssuedAt: tt.issuedAt, Expires: t0.Add(time.Hour)}
		job := &jobcast.Job{TokensNotBefore: tt.notBefore}
		if got := auth.Revoked(c, job); got != tt.want {
			t.Errorf("%s: Revoked = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestVerifyCachedSameVerdict checks that a token verified before (and so
// remembered) gets the verdict a first check would: same claims, the job
// still checked, expiry at the same instant, and a token differing by one
// character still refused.
func TestVerifyCachedSameVerdict(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(t0)
	tokens := auth.NewTokens(newRing(t, testKey("k1", 1)), 10*time.Minute, clock)
	raw, exp, err := tokens.Issue("job-1")
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	first, err := tokens.Verify(raw, "job-1")
	if err != nil {
		t.Fatalf("first Verify: %v", err)
	}
	again, err := tokens.Verify(raw, "")
	if err != nil || *again != *first {
		t.Fatalf("second Verify = %+v, %v; want %+v", again, err, first)
	}
	_, err = tokens.Verify(raw, "job-2")
	wantErr(t, err, auth.ErrWrongJob)
	sig := raw[strings.LastIndexByte(raw, '.')+1:]
	flipped := "A"
	if sig[0] == 'A' {
		flipped = "B"
	}
	_, err = tokens.Verify(raw[:len(raw)-len(sig)]+flipped+sig[1:], "job-1")
	wantErr(t, err, auth.ErrTokenInvalid)
	clock.Advance(exp.Sub(clock.Now()))
	_, err = tokens.Verify(raw, "job-1")
	wantErr(t, err, auth.ErrTokenExpired)
	_, err = tokens.Verify(raw, "job-1") // forgotten: the parser says the same
	wantErr(t, err, auth.ErrTokenExpired)
}
