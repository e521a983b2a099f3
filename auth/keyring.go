package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Key is one signing key of the ring.
type Key struct {
	ID        string    `json:"kid"`
	Secret    []byte    `json:"secret"`
	CreatedAt time.Time `json:"createdAt"`
}

// Keyring holds the signing keys: the newest signs, all verify. Rotating adds
// a key; tokens signed by older keys stay valid until they expire or the old
// key is removed from the file.
type Keyring struct {
	keys []Key // oldest first; the last is current
}

// KeyringFile is the key ring's file name inside the data dir.
const KeyringFile = "jwt-keys.json"

// SecretKeyID derives a stable kid for a configured secret, so that every
// node sharing JOBCAST_JWT_SECRET stamps the same kid without storing it.
func SecretKeyID(secret []byte) string {
	sum := sha256.Sum256(secret)
	return "s-" + hex.EncodeToString(sum[:4])
}

// NewKeyring returns a ring of the given keys, oldest first.
func NewKeyring(keys ...Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("key ring is empty")
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if len(k.Secret) < 32 {
			return nil, fmt.Errorf("key %q is shorter than 32 bytes", k.ID)
		}
		if k.ID == "" || seen[k.ID] {
			return nil, fmt.Errorf("key ids must be unique and non-empty (%q)", k.ID)
		}
		seen[k.ID] = true
	}
	return &Keyring{keys: keys}, nil
}

// Current returns the signing key.
func (r *Keyring) Current() Key { return r.keys[len(r.keys)-1] }

// Lookup returns the key with id kid.
func (r *Keyring) Lookup(kid string) (Key, bool) {
	for _, k := range r.keys {
		if k.ID == kid {
			return k, true
		}
	}
	return Key{}, false
}

// LoadOrCreateKeyring reads the ring from dir, creating it with one fresh key
// when absent. When secret is set it becomes the current key (appended in
// memory, never written), with the file's keys still verifying.
func LoadOrCreateKeyring(dir string, secret string, now time.Time) (*Keyring, error) {
	path := filepath.Join(dir, KeyringFile)
	var keys []Key
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		var f struct{ Keys []Key }
		if err := json.Unmarshal(data, &f); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		keys = f.Keys
	case errors.Is(err, os.ErrNotExist):
		if secret == "" {
			k, err := newKey(now)
			if err != nil {
				return nil, err
			}
			keys = []Key{k}
			if err := writeKeyring(path, keys); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if secret != "" {
		k := Key{ID: SecretKeyID([]byte(secret)), Secret: []byte(secret), CreatedAt: now}
		filtered := keys[:0]
		for _, old := range keys {
			if old.ID != k.ID {
				filtered = append(filtered, old)
			}
		}
		keys = append(filtered, k)
	}
	return NewKeyring(keys...)
}

// RotateKeyring adds a fresh key to the ring file in dir and returns its id.
// Running servers pick it up on restart; until then they keep signing with
// the old key, which stays valid for verification.
func RotateKeyring(dir string, now time.Time) (string, error) {
	path := filepath.Join(dir, KeyringFile)
	var f struct{ Keys []Key }
	if data, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(data, &f); err != nil {
			return "", fmt.Errorf("read %s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	k, err := newKey(now)
	if err != nil {
		return "", err
	}
	if err := writeKeyring(path, append(f.Keys, k)); err != nil {
		return "", err
	}
	return k.ID, nil
}

func newKey(now time.Time) (Key, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return Key{}, fmt.Errorf("generate key: %w", err)
	}
	id := make([]byte, 6)
	if _, err := rand.Read(id); err != nil {
		return Key{}, fmt.Errorf("generate key id: %w", err)
	}
	return Key{ID: "k-" + base64.RawURLEncoding.EncodeToString(id), Secret: secret, CreatedAt: now.UTC()}, nil
}

func writeKeyring(path string, keys []Key) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	data, err := json.MarshalIndent(struct {
		Keys []Key `json:"keys"`
	}{keys}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode key ring: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
