package auth_test

import (
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
)

// BenchmarkTokensVerify is the cost every WebSocket handshake pays: an HS256
// signature check plus claim validation.
func BenchmarkTokensVerify(b *testing.B) {
	secret := []byte("bench-jwt-secret-0123456789-0123456789")
	ring, err := auth.NewKeyring(auth.Key{ID: auth.SecretKeyID(secret), Secret: secret})
	if err != nil {
		b.Fatal(err)
	}
	tokens := auth.NewTokens(ring, time.Hour, jobcast.SystemClock{})
	const jobID = "job_0192f3a4b5c6d7e8f9a0b1c2"
	tok, _, err := tokens.Issue(jobID)
	if err != nil {
		b.Fatal(err)
	}
	// first: a token this process has not verified yet (signature and
	// claims checked); again: one it has (the cache of verified tokens).
	b.Run("first", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fresh := auth.NewTokens(ring, time.Hour, jobcast.SystemClock{})
			if _, err := fresh.Verify(tok, jobID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("again", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tokens.Verify(tok, jobID); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkTokensIssue(b *testing.B) {
	secret := []byte("bench-jwt-secret-0123456789-0123456789")
	ring, err := auth.NewKeyring(auth.Key{ID: auth.SecretKeyID(secret), Secret: secret})
	if err != nil {
		b.Fatal(err)
	}
	tokens := auth.NewTokens(ring, time.Hour, jobcast.SystemClock{})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := tokens.Issue("job_0192f3a4b5c6d7e8f9a0b1c2"); err != nil {
			b.Fatal(err)
		}
	}
}
