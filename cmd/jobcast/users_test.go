package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var userTokenRE = regexp.MustCompile(`jcu_[A-Za-z0-9_-]{43}`)

// TestUsersCLI drives a real server's users with the CLI: create a viewer
// and an admin (tokens printed once), list, what the viewer may do over
// the API and the dashboard, revoke; and no token in the server's log
// (debug level) or in an error.
func TestUsersCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stdout, stderr, _ := runMain(t, []string{"serve", "-addr", "127.0.0.1:0", "-data-dir", dir, "-log-level", "debug"},
		map[string]string{"JOBCAST_API_KEYS": "users-cli-key-0123456789"})
	base := stdout.waitFor(t, servingRE)[1]
	adminTok, err := os.ReadFile(filepath.Join(dir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	admin := strings.TrimSpace(string(adminTok))
	cli := func(token string, args ...string) (string, string, int) {
		t.Helper()
		var out, errOut bytes.Buffer
		full := append([]string{args[0], args[1], "-server", base, "-data-dir", dir}, args[2:]...)
		if token != "" {
			full = append(full[:2], append([]string{"-admin-token", token}, full[2:]...)...)
		}
		code := Main(context.Background(), full, mapEnv(nil), &out, &errOut)
		return out.String(), errOut.String(), code
	}
	var outputs []string
	out, errOut, code := cli("", "users", "create", "vera", "-role", "viewer")
	vera := userTokenRE.FindString(out)
	if code != 0 || vera == "" || !strings.Contains(out, "vera (viewer)") {
		t.Fatalf("create vera: %d %s %s", code, out, errOut)
	}
	out, _, code = cli("", "users", "create", "ada", "-role", "admin")
	ada := userTokenRE.FindString(out)
	if code != 0 || ada == "" || ada == vera {
		t.Fatalf("create ada: %d %s", code, out)
	}
	out, errOut, code = cli("", "users", "list")
	if code != 0 || !regexp.MustCompile(`(?m)^ada\s+admin\s+20`).MatchString(out) || !regexp.MustCompile(`(?m)^vera\s+viewer\s+20`).MatchString(out) ||
		strings.Contains(out, "jcu_") {
		t.Fatalf("list: %d\n%s%s", code, out, errOut)
	}
	// Refused without a round trip, or by the server.
	for _, c := range []struct {
		token string
		args  []string
		want  string
	}{
		{"", []string{"users", "create", "bad name", "-role", "viewer"}, "user name"},
		{"", []string{"users", "create", "x"}, "-role"},
		{"", []string{"users", "create", "x", "-role", "owner"}, "viewer or admin"},
		{"", []string{"users", "create", "vera", "-role", "admin"}, "already exists"},
		{"", []string{"users", "revoke", "nobody"}, "no user"},
		{vera, []string{"users", "list"}, "needs the admin role"},
		{vera, []string{"users", "create", "mallory", "-role", "admin"}, "needs the admin role"},
		{"jcu_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", []string{"users", "list"}, "401"},
	} {
		out, errOut, code := cli(c.token, c.args...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: %d %s, want an error with %q", c.args, code, errOut, c.want)
		}
		outputs = append(outputs, out, errOut)
	}

	// The viewer reads and is refused writes; the admin user writes.
	req := func(method, path, token, body string, hdr ...string) (int, string, *http.Response) {
		t.Helper()
		r, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := noRedirect.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		outputs = append(outputs, string(data))
		return resp.StatusCode, string(data), resp
	}
	for _, c := range []struct {
		method, path, token, body string
		want                      int
	}{
		{"GET", "/v1/alerts", vera, "", 200},
		{"GET", "/v1/experiments", vera, "", 200},
		{"GET", "/metrics", vera, "", 200},
		{"POST", "/graphql", vera, `{"query":"{ __typename }"}`, 200},
		{"POST", "/v1/sql", vera, "SELECT 1", 403},
		{"POST", "/v1/alerts/silences", vera, `{"matchers":["alertname=x"],"duration":"1h"}`, 403},
		{"POST", "/v1/sql", ada, "SELECT 1", 200},
	} {
		if got, body, _ := req(c.method, c.path, c.token, c.body); got != c.want {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, got, body, c.want)
		}
	}

	// The viewer signs in to the dashboard and is named there.
	form := url.Values{"token": {vera}}.Encode()
	code, _, resp := req("POST", "/dashboard/login", "", form, "Content-Type", "application/x-www-form-urlencoded", "Origin", base)
	var session string
	for _, c := range resp.Cookies() {
		if c.Name == "jobcast_dashboard" {
			session = c.Name + "=" + c.Value
		}
	}
	if code != http.StatusSeeOther || session == "" {
		t.Fatalf("dashboard login as vera: %d", code)
	}
	if code, page, _ := req("GET", "/dashboard", "", "", "Cookie", session); code != 200 || !strings.Contains(page, "Signed in as <strong>vera</strong> (viewer)") {
		t.Errorf("dashboard as vera: %d", code)
	}

	// Revoked: at once on this node, token and session.
	out, errOut, code = cli("", "users", "revoke", "vera")
	if code != 0 || !strings.Contains(out, "Revoked vera") {
		t.Fatalf("revoke: %d %s %s", code, out, errOut)
	}
	if code, _, _ := req("GET", "/v1/alerts", vera, ""); code != 401 {
		t.Errorf("revoked token: %d", code)
	}
	if code, _, _ := req("GET", "/dashboard/api/overview", "", "", "Cookie", session); code != 401 {
		t.Errorf("revoked user's session: %d", code)
	}
	if out, _, _ := cli("", "users", "list"); strings.Contains(out, "vera") {
		t.Errorf("vera still listed:\n%s", out)
	}

	logs := stderr.String()
	if !strings.Contains(logs, "user created") || !strings.Contains(logs, "user revoked") || !strings.Contains(logs, "dashboard login") {
		t.Errorf("server log lacks the user events:\n%s", logs)
	}
	for _, secret := range []string{vera, ada, admin} {
		if strings.Contains(logs, secret) || strings.Contains(stdout.String(), secret) {
			t.Errorf("a token (%.8s…) is in the server's output", secret)
		}
		for _, o := range outputs {
			if strings.Contains(o, secret) {
				t.Errorf("a token (%.8s…) is in an error or answer: %s", secret, o)
			}
		}
	}
}

// noRedirect keeps a login's 303 and its cookie visible.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
