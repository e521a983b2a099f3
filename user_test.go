package jobcast_test

import (
	"strings"
	"testing"

	"github.com/jobcast/jobcast"
)

func TestValidateUserName(t *testing.T) {
	t.Parallel()
	for name, ok := range map[string]bool{
		"alice": true, "ops.bot": true, "a@example.com": true, "x": true, "A-1_b": true,
		strings.Repeat("a", 64): true, strings.Repeat("a", 65): false,
		"": false, "-x": false, ".x": false, "a b": false, "a/b": false, "ü": false,
		"admin": false, "Admin": false, "a\n": false,
	} {
		if err := jobcast.ValidateUserName(name); (err == nil) != ok {
			t.Errorf("%q: %v", name, err)
		}
	}
}

func TestRoles(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		have, need jobcast.Role
		ok         bool
	}{
		{jobcast.RoleAdmin, jobcast.RoleAdmin, true},
		{jobcast.RoleAdmin, jobcast.RoleViewer, true},
		{jobcast.RoleViewer, jobcast.RoleViewer, true},
		{jobcast.RoleViewer, jobcast.RoleAdmin, false},
		{"", jobcast.RoleViewer, false},
		{"root", jobcast.RoleAdmin, false},
	} {
		if got := c.have.Allows(c.need); got != c.ok {
			t.Errorf("%q allows %q: %v", c.have, c.need, got)
		}
	}
	for in, want := range map[string]jobcast.Role{"viewer": jobcast.RoleViewer, " Admin ": jobcast.RoleAdmin} {
		if r, err := jobcast.ParseRole(in); err != nil || r != want {
			t.Errorf("ParseRole(%q) = %q %v", in, r, err)
		}
	}
	if _, err := jobcast.ParseRole("owner"); err == nil || jobcast.ErrorCode(err) != "E_BAD_REQUEST" {
		t.Errorf("ParseRole(owner): %v", err)
	}
}

func TestNewUserToken(t *testing.T) {
	t.Parallel()
	tok, hash, err := jobcast.NewUserToken()
	if err != nil {
		t.Fatal(err)
	}
	// jcu_ + base64url of 32 bytes (43 characters, no padding).
	if !strings.HasPrefix(tok, "jcu_") || len(tok) != 4+43 || strings.ContainsAny(tok, "+/=") {
		t.Errorf("token %q", tok)
	}
	if hash != jobcast.HashUserToken(tok) || len(hash) != 64 || strings.Contains(hash, tok) {
		t.Errorf("hash %q", hash)
	}
	tok2, _, _ := jobcast.NewUserToken()
	if tok2 == tok {
		t.Error("two tokens are equal")
	}
}
