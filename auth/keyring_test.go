package auth_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/internal/clocktest"
)

func TestNewKeyringErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		keys []auth.Key
		want string
	}{
		{name: "empty", keys: nil, want: "key ring is empty"},
		{name: "short secret", keys: []auth.Key{{ID: "k1", Secret: make([]byte, 31)}}, want: `key "k1" is shorter than 32 bytes`},
		{name: "empty id", keys: []auth.Key{{ID: "", Secret: make([]byte, 32)}}, want: `key ids must be unique and non-empty ("")`},
		{name: "duplicate id", keys: []auth.Key{testKey("k1", 1), testKey("k1", 2)}, want: `key ids must be unique and non-empty ("k1")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := auth.NewKeyring(tt.keys...)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("NewKeyring = %v, %v; want error %q", r, err, tt.want)
			}
		})
	}
}

func TestKeyringCurrentAndLookup(t *testing.T) {
	t.Parallel()
	r := newRing(t, testKey("k1", 1), testKey("k2", 2), testKey("k3", 3))
	if got := r.Current().ID; got != "k3" {
		t.Fatalf("Current = %s, want the last key k3", got)
	}
	for _, id := range []string{"k1", "k2", "k3"} {
		if k, ok := r.Lookup(id); !ok || k.ID != id {
			t.Fatalf("Lookup(%s) = %v, %v", id, k.ID, ok)
		}
	}
	if _, ok := r.Lookup("k4"); ok {
		t.Fatal("Lookup(k4) found a key")
	}
	if _, ok := r.Lookup(""); ok {
		t.Fatal("Lookup(\"\") found a key")
	}
}

// loadRing calls LoadOrCreateKeyring and fails t on error.
func loadRing(t *testing.T, dir, secret string) *auth.Keyring {
	t.Helper()
	r, err := auth.LoadOrCreateKeyring(dir, secret, t0)
	if err != nil {
		t.Fatalf("LoadOrCreateKeyring: %v", err)
	}
	return r
}

func kidOf(t *testing.T, raw string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(raw, &jwt.RegisteredClaims{})
	if err != nil {
		t.Fatalf("ParseUnverified: %v", err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

func TestLoadOrCreateKeyringCreatesOnce(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	r1 := loadRing(t, dir, "")
	k := r1.Current()
	if !strings.HasPrefix(k.ID, "k-") || len(k.Secret) != 32 {
		t.Fatalf("generated key %q with %d-byte secret", k.ID, len(k.Secret))
	}
	st, err := os.Stat(filepath.Join(dir, auth.KeyringFile))
	if err != nil {
		t.Fatalf("key ring file: %v", err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key ring file mode %o, want 600", perm)
	}
	r2 := loadRing(t, dir, "")
	if r2.Current().ID != k.ID || !bytes.Equal(r2.Current().Secret, k.Secret) {
		t.Fatalf("second load returned key %s, want the stored %s", r2.Current().ID, k.ID)
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clock := clocktest.New(t0)
	ring1 := loadRing(t, dir, "")
	oldKid := ring1.Current().ID
	tokens1 := auth.NewTokens(ring1, time.Hour, clock)
	oldToken, _, err := tokens1.Issue("job-1")
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}

	newKid, err := auth.RotateKeyring(dir, t0.Add(time.Minute))
	if err != nil {
		t.Fatalf("RotateKeyring: %v", err)
	}
	if newKid == oldKid || !strings.HasPrefix(newKid, "k-") {
		t.Fatalf("RotateKeyring returned kid %q (old %q)", newKid, oldKid)
	}
	ring2 := loadRing(t, dir, "")
	if got := ring2.Current().ID; got != newKid {
		t.Fatalf("current kid after rotation = %s, want %s", got, newKid)
	}
	tokens2 := auth.NewTokens(ring2, time.Hour, clock)
	if c, err := tokens2.Verify(oldToken, "job-1"); err != nil || c.JobID != "job-1" {
		t.Fatalf("old token after rotation: %+v, %v", c, err)
	}
	newToken, _, err := tokens2.Issue("job-1")
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if got := kidOf(t, newToken); got != newKid {
		t.Fatalf("new token kid = %q, want %q", got, newKid)
	}
	// A server that has not restarted yet does not know the new key.
	_, err = tokens1.Verify(newToken, "job-1")
	wantErr(t, err, auth.ErrTokenInvalid)

	// Rotating again keeps every older key.
	if _, err := auth.RotateKeyring(dir, t0.Add(2*time.Minute)); err != nil {
		t.Fatalf("second RotateKeyring: %v", err)
	}
	ring3 := loadRing(t, dir, "")
	for _, kid := range []string{oldKid, newKid} {
		if _, ok := ring3.Lookup(kid); !ok {
			t.Fatalf("key %s lost by the second rotation", kid)
		}
	}
}

func TestRotateKeyringOnEmptyDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kid, err := auth.RotateKeyring(dir, t0)
	if err != nil {
		t.Fatalf("RotateKeyring: %v", err)
	}
	if got := loadRing(t, dir, "").Current().ID; got != kid {
		t.Fatalf("current kid = %s, want %s", got, kid)
	}
}

func TestConfiguredSecretBecomesCurrent(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("shared-secret-", 3) // 42 bytes
	clock := clocktest.New(t0)

	t.Run("empty data dir", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		ring := loadRing(t, dir, secret)
		if got, want := ring.Current().ID, auth.SecretKeyID([]byte(secret)); got != want {
			t.Fatalf("current kid = %s, want %s", got, want)
		}
		if _, err := os.Stat(filepath.Join(dir, auth.KeyringFile)); !os.IsNotExist(err) {
			t.Fatalf("a configured secret wrote a key ring file (stat err %v)", err)
		}
		tokens := auth.NewTokens(ring, time.Hour, clock)
		// An external auth service holding JOBCAST_JWT_SECRET mints a
		// token without kid.
		external := mint(t, jwt.SigningMethodHS256, []byte(secret), "", claimsFor("job-7", t0, t0.Add(time.Hour)))
		if c, err := tokens.Verify(external, "job-7"); err != nil || c.JobID != "job-7" {
			t.Fatalf("externally minted token: %+v, %v", c, err)
		}
		own, _, err := tokens.Issue("job-7")
		if err != nil {
			t.Fatalf("Issue: %v", err)
		}
		if got := kidOf(t, own); got != auth.SecretKeyID([]byte(secret)) {
			t.Fatalf("issued kid %s, want the secret's kid", got)
		}
	})

	t.Run("existing key ring keeps verifying", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		fileRing := loadRing(t, dir, "")
		oldToken, _, err := auth.NewTokens(fileRing, time.Hour, clock).Issue("job-1")
		if err != nil {
			t.Fatalf("Issue: %v", err)
		}
		ring := loadRing(t, dir, secret)
		if got := ring.Current().ID; got != auth.SecretKeyID([]byte(secret)) {
			t.Fatalf("current kid = %s, want the secret's", got)
		}
		tokens := auth.NewTokens(ring, time.Hour, clock)
		if _, err := tokens.Verify(oldToken, "job-1"); err != nil {
			t.Fatalf("token of the file key: %v", err)
		}
		// A kid-less token is checked against the secret, not the file key.
		fileKid := mint(t, jwt.SigningMethodHS256, fileRing.Current().Secret, "", claimsFor("job-1", t0, t0.Add(time.Hour)))
		_, err = tokens.Verify(fileKid, "job-1")
		wantErr(t, err, auth.ErrTokenInvalid)
		// Loading again does not duplicate the secret's key.
		if _, err := auth.LoadOrCreateKeyring(dir, secret, t0); err != nil {
			t.Fatalf("reload with secret: %v", err)
		}
	})

	t.Run("short secret", func(t *testing.T) {
		t.Parallel()
		_, err := auth.LoadOrCreateKeyring(t.TempDir(), "too-short", t0)
		if err == nil || !strings.Contains(err.Error(), "shorter than 32 bytes") {
			t.Fatalf("LoadOrCreateKeyring with a short secret = %v", err)
		}
	})
}

func TestSecretKeyID(t *testing.T) {
	t.Parallel()
	a, b := auth.SecretKeyID([]byte("secret-a")), auth.SecretKeyID([]byte("secret-b"))
	if a != auth.SecretKeyID([]byte("secret-a")) {
		t.Fatal("SecretKeyID is not stable")
	}
	if a == b {
		t.Fatal("different secrets share a kid")
	}
	if !strings.HasPrefix(a, "s-") || len(a) != 10 {
		t.Fatalf("SecretKeyID = %q, want s- and 8 hex digits", a)
	}
}

func TestLoadOrCreateKeyringCorruptFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{name: "not JSON", content: "{", want: auth.KeyringFile},
		{name: "no keys", content: `{"keys":[]}`, want: "key ring is empty"},
		{name: "short key", content: `{"keys":[{"kid":"k1","secret":"c2hvcnQ="}]}`, want: `key "k1" is shorter than 32 bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, auth.KeyringFile), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := auth.LoadOrCreateKeyring(dir, "", t0)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadOrCreateKeyring = %v, want an error containing %q", err, tt.want)
			}
			if _, err := auth.RotateKeyring(dir, t0); tt.name == "not JSON" && err == nil {
				t.Fatal("RotateKeyring over a corrupt file succeeded")
			}
		})
	}
}
