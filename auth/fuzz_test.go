package auth_test

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/internal/clocktest"
)

// FuzzVerify feeds arbitrary strings to Tokens.Verify: it must never panic,
// return only the documented errors, and accept only tokens for the job.
func FuzzVerify(f *testing.F) {
	key := testKey("k1", 1)
	ring, err := auth.NewKeyring(key)
	if err != nil {
		f.Fatal(err)
	}
	tokens := auth.NewTokens(ring, time.Hour, clocktest.New(t0))
	sign := func(kid string, c jwt.RegisteredClaims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key.Secret)
		if err != nil {
			f.Fatal(err)
		}
		return s
	}
	valid, _, err := tokens.Issue("job-1")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []struct{ raw, job string }{
		{valid, "job-1"},
		{valid, "job-2"},
		{valid, ""},
		{sign("", claimsFor("job-1", t0, t0.Add(time.Minute))), "job-1"},
		{sign("k1", claimsFor("job-1", t0.Add(-time.Hour), t0.Add(-time.Second))), "job-1"},
		{sign("nope", claimsFor("job-1", t0, t0.Add(time.Minute))), "job-1"},
		{"eyJhbGciOiJub25lIn0.eyJzdWIiOiJqb2ItMSJ9.", "job-1"},
		{"a.b.c", "job-1"},
		{"", ""},
	} {
		f.Add(seed.raw, seed.job)
	}
	f.Fuzz(func(t *testing.T, raw, jobID string) {
		c, err := tokens.Verify(raw, jobID)
		switch err {
		case nil:
			if c == nil || c.JobID == "" || (jobID != "" && c.JobID != jobID) {
				t.Fatalf("accepted claims %+v for job %q", c, jobID)
			}
			if !c.Expires.After(t0) {
				t.Fatalf("accepted a token expiring at %v", c.Expires)
			}
		case auth.ErrNoToken, auth.ErrTokenExpired, auth.ErrTokenInvalid, auth.ErrWrongJob:
			if c != nil {
				t.Fatalf("claims %+v returned with error %v", c, err)
			}
		default:
			t.Fatalf("undocumented error %T: %v", err, err)
		}
	})
}
