package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/nats/natstest"
)

// TestClusterUsers runs two full nodes on one NATS server: a user created
// through node A signs in on node B (API and dashboard); revoked through
// A, it is refused on A at once and on B within the cache lifetime, token
// and session alike.
func TestClusterUsers(t *testing.T) {
	t.Parallel()
	urls := engineURLs{NATS: natstest.NewServer(t)}
	a, _ := startClusterNode(t, "node-a", urls)
	b, _ := startClusterNode(t, "node-b", urls)
	admin := a.cfg.AdminToken
	call := func(base, method, path, token, body string, hdr ...string) (int, string, *http.Response) {
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
		return resp.StatusCode, string(data), resp
	}
	code, body, _ := call(a.URL(), "POST", "/v1/users", admin, `{"name":"vera","role":"viewer"}`)
	var created struct{ Token string }
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &created) != nil || created.Token == "" {
		t.Fatalf("create on A: %d %s", code, body)
	}
	vera := created.Token
	if code, body, _ := call(b.URL(), "GET", "/v1/alerts", vera, ""); code != 200 {
		t.Fatalf("vera on B: %d %s", code, body)
	}
	if code, _, _ := call(b.URL(), "POST", "/v1/sql", vera, "SELECT 1"); code != http.StatusForbidden {
		t.Errorf("vera's SQL on B: %d", code)
	}
	if code, body, _ := call(b.URL(), "GET", "/v1/users", admin, ""); code != 200 || !strings.Contains(body, `"name":"vera"`) {
		t.Errorf("users listed on B: %d %s", code, body)
	}
	code, _, resp := call(b.URL(), "POST", "/dashboard/login", "", url.Values{"token": {vera}}.Encode(),
		"Content-Type", "application/x-www-form-urlencoded", "Origin", b.URL())
	var session string
	for _, c := range resp.Cookies() {
		if c.Name == "jobcast_dashboard" {
			session = c.Name + "=" + c.Value
		}
	}
	if code != http.StatusSeeOther || session == "" {
		t.Fatalf("dashboard login on B: %d", code)
	}
	// Sessions are signed with a key from the shared admin token: A takes
	// B's.
	for _, n := range []*node{a, b} {
		if code, body, _ := call(n.URL(), "GET", "/dashboard/api/overview", "", "", "Cookie", session); code != 200 {
			t.Fatalf("vera's session on %s: %d %s", n.cfg.NodeID, code, body)
		}
	}

	if code, body, _ := call(a.URL(), "DELETE", "/v1/users/vera", admin, ""); code != 200 {
		t.Fatalf("revoke on A: %d %s", code, body)
	}
	revoked := time.Now()
	if code, _, _ := call(a.URL(), "GET", "/v1/alerts", vera, ""); code != http.StatusUnauthorized {
		t.Errorf("vera on A right after the revocation: %d", code)
	}
	deadline := revoked.Add(auth.DefaultUserCacheTTL + 5*time.Second)
	for {
		tokenCode, _, _ := call(b.URL(), "GET", "/v1/alerts", vera, "")
		sessionCode, _, _ := call(b.URL(), "GET", "/dashboard/api/overview", "", "", "Cookie", session)
		if tokenCode == http.StatusUnauthorized && sessionCode == http.StatusUnauthorized {
			t.Logf("refused on B %s after the revocation", time.Since(revoked).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("on B %s after the revocation: token %d, session %d", time.Since(revoked), tokenCode, sessionCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
