package auth_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobcast/jobcast/auth"
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	keys, err := auth.NewAPIKeys([]string{"plain-key-0123456789"}, []string{sha("hashed-key-0123456789"), strings.ToUpper(sha("upper-key-0123456789"))})
	if err != nil {
		t.Fatalf("NewAPIKeys: %v", err)
	}
	tests := map[string]bool{
		"plain-key-0123456789":       true,
		"hashed-key-0123456789":      true,
		"upper-key-0123456789":       true,
		"":                           false,
		"plain-key-012345678":        false,
		"PLAIN-KEY-0123456789":       false,
		sha("hashed-key-0123456789"): false, // the hash itself is not a key
	}
	for key, want := range tests {
		if got := keys.Valid(key); got != want {
			t.Errorf("Valid(%q) = %v, want %v", key, got, want)
		}
	}
	if got := keys.Len(); got != 3 {
		t.Errorf("Len = %d, want 3", got)
	}
	dup, err := auth.NewAPIKeys([]string{"same-key-0123456789"}, []string{sha("same-key-0123456789")})
	if err != nil {
		t.Fatalf("NewAPIKeys: %v", err)
	}
	if dup.Len() != 1 {
		t.Errorf("a key given plain and hashed counts %d times, want 1", dup.Len())
	}
}

func TestNewAPIKeysMalformedHash(t *testing.T) {
	t.Parallel()
	for _, h := range []string{"xyz", sha("k")[:62], sha("k") + "00", ""} {
		if _, err := auth.NewAPIKeys(nil, []string{h}); err == nil || !strings.Contains(err.Error(), "malformed API key hash") {
			t.Errorf("NewAPIKeys(hash %q) = %v, want a malformed hash error", h, err)
		}
	}
}

func TestGenerateAPIKeyStoresOnlyAHash(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	if hashes, err := auth.LoadAPIKeyHashes(dir); err != nil || hashes != nil {
		t.Fatalf("LoadAPIKeyHashes on a missing dir = %v, %v; want nil, nil", hashes, err)
	}
	k1, err := auth.GenerateAPIKey(dir)
	if err != nil {
		t.Fatalf("GenerateAPIKey: %v", err)
	}
	k2, err := auth.GenerateAPIKey(dir)
	if err != nil {
		t.Fatalf("GenerateAPIKey: %v", err)
	}
	if !strings.HasPrefix(k1, "jc_") || len(k1) < 16 || k1 == k2 {
		t.Fatalf("generated keys %q and %q", k1, k2)
	}
	path := filepath.Join(dir, auth.APIKeysFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read key file: %v", err)
	}
	if strings.Contains(string(data), k1) || strings.Contains(string(data), k2) {
		t.Fatal("the key file contains a plain key")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %o, want 600", st.Mode().Perm())
	}
	hashes, err := auth.LoadAPIKeyHashes(dir)
	if err != nil {
		t.Fatalf("LoadAPIKeyHashes: %v", err)
	}
	if len(hashes) != 2 || hashes[0] != sha(k1) || hashes[1] != sha(k2) {
		t.Fatalf("hashes = %v, want the sha256 of both keys", hashes)
	}
	keys, err := auth.NewAPIKeys(nil, hashes)
	if err != nil {
		t.Fatalf("NewAPIKeys: %v", err)
	}
	if !keys.Valid(k1) || !keys.Valid(k2) || keys.Valid("jc_other") {
		t.Fatal("generated keys do not validate against the stored hashes")
	}
}

func TestLoadAPIKeyHashesSkipsCommentsAndBlankLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	content := "# producer keys\n\n" + sha("a") + " ci-runner\n   \n  " + sha("b") + "\n# end\n"
	if err := os.WriteFile(filepath.Join(dir, auth.APIKeysFile), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	hashes, err := auth.LoadAPIKeyHashes(dir)
	if err != nil {
		t.Fatalf("LoadAPIKeyHashes: %v", err)
	}
	if len(hashes) != 2 || hashes[0] != sha("a") || hashes[1] != sha("b") {
		t.Fatalf("hashes = %q", hashes)
	}
}

func TestLoadOrCreateAdminToken(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	tok, created, err := auth.LoadOrCreateAdminToken(dir)
	if err != nil || !created || !strings.HasPrefix(tok, "jca_") {
		t.Fatalf("first call = %q, %v, %v; want a new jca_ token", tok, created, err)
	}
	st, err := os.Stat(filepath.Join(dir, auth.AdminTokenFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin token file: %v, mode %v", err, st)
	}
	again, created, err := auth.LoadOrCreateAdminToken(dir)
	if err != nil || created || again != tok {
		t.Fatalf("second call = %q, %v, %v; want %q, false", again, created, err, tok)
	}
	// An operator may write the file by hand, with surrounding space.
	if err := os.WriteFile(filepath.Join(dir, auth.AdminTokenFile), []byte("  my-admin-token \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, created, err := auth.LoadOrCreateAdminToken(dir); err != nil || created || got != "my-admin-token" {
		t.Fatalf("hand-written token = %q, %v, %v", got, created, err)
	}
	// An empty file is replaced.
	if err := os.WriteFile(filepath.Join(dir, auth.AdminTokenFile), []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, created, err := auth.LoadOrCreateAdminToken(dir); err != nil || !created || !strings.HasPrefix(got, "jca_") {
		t.Fatalf("empty file = %q, %v, %v; want a new token", got, created, err)
	}
}

func TestEqualSecret(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want bool
	}{
		{"admin-token", "admin-token", true},
		{"admin-token", "admin-tokeN", false},
		{"admin-token", "admin-token ", false},
		{"admin-token", "", false},
		{"", "", false}, // an unset secret never matches
	}
	for _, tt := range tests {
		if got := auth.EqualSecret(tt.a, tt.b); got != tt.want {
			t.Errorf("EqualSecret(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestRandomSecret(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		s, err := auth.RandomSecret("p_")
		if err != nil {
			t.Fatalf("RandomSecret: %v", err)
		}
		if !strings.HasPrefix(s, "p_") || len(s) != 2+32 || strings.ToLower(s) != s {
			t.Fatalf("RandomSecret = %q, want p_ and 32 lower-case base32 characters", s)
		}
		if seen[s] {
			t.Fatalf("RandomSecret repeated %q", s)
		}
		seen[s] = true
	}
}
