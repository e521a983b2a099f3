package auth

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// File names inside the data dir.
const (
	APIKeysFile    = "api-keys"    // sha256 hashes of generated producer keys
	AdminTokenFile = "admin-token" // the generated admin token (mode 0600)
)

// APIKeys checks producer API keys. It stores only hashes, so a lookup's
// timing says nothing about the keys.
type APIKeys struct {
	hashes map[[32]byte]struct{}
}

// NewAPIKeys returns a checker for the given plain keys and hex hashes.
func NewAPIKeys(keys []string, hexHashes []string) (*APIKeys, error) {
	a := &APIKeys{hashes: make(map[[32]byte]struct{})}
	for _, k := range keys {
		a.hashes[sha256.Sum256([]byte(k))] = struct{}{}
	}
	for _, h := range hexHashes {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("malformed API key hash %q", h)
		}
		a.hashes[[32]byte(b)] = struct{}{}
	}
	return a, nil
}

// Valid reports whether key is a known API key.
func (a *APIKeys) Valid(key string) bool {
	if key == "" {
		return false
	}
	_, ok := a.hashes[sha256.Sum256([]byte(key))]
	return ok
}

// Len returns how many keys are known.
func (a *APIKeys) Len() int { return len(a.hashes) }

// RandomSecret returns a new random secret with a readable prefix.
func RandomSecret(prefix string) (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}

// LoadAPIKeyHashes reads the hashes of generated keys from dir.
func LoadAPIKeyHashes(dir string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, APIKeysFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read API keys: %w", err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Fields(line)[0])
	}
	return out, nil
}

// GenerateAPIKey creates a producer key, appends its hash to dir's key file
// and returns the plain key, which is shown once and never stored.
func GenerateAPIKey(dir string) (string, error) {
	key, err := RandomSecret("jc_")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, APIKeysFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("store API key: %w", err)
	}
	sum := sha256.Sum256([]byte(key))
	if _, err := fmt.Fprintf(f, "%s\n", hex.EncodeToString(sum[:])); err != nil {
		f.Close()
		return "", fmt.Errorf("store API key: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("store API key: %w", err)
	}
	return key, nil
}

// LoadOrCreateAdminToken returns the admin token stored in dir, creating one
// when absent; created reports whether it is new.
func LoadOrCreateAdminToken(dir string) (token string, created bool, err error) {
	path := filepath.Join(dir, AdminTokenFile)
	data, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(data)); t != "" {
			return t, false, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("read admin token: %w", err)
	}
	t, err := RandomSecret("jca_")
	if err != nil {
		return "", false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("create data dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("store admin token: %w", err)
	}
	return t, true, nil
}

// EqualSecret compares two secrets in constant time.
func EqualSecret(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1 && a != ""
}
