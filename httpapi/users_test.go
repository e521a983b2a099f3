package httpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/httpapi"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/internal/jobcasttest"
	"github.com/jobcast/jobcast/internal/syncbuf"
	"github.com/jobcast/jobcast/metrics"
	"github.com/jobcast/jobcast/sqlite"
)

// usersEnv is an API with every admin surface mounted (stub handlers
// where the surface's own tests live elsewhere), a SQLite user store, a
// manual clock and a captured debug log.
type usersEnv struct {
	url   string
	store *sqlite.UserStore
	clock *clocktest.Clock
	log   *syncbuf.Buffer
}

func newUsersEnv(t *testing.T) *usersEnv {
	t.Helper()
	srv := jobcasttest.Start(t, jobcasttest.Options{})
	store, err := sqlite.OpenUserStore(context.Background(), filepath.Join(t.TempDir(), "jobcast.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	clock := clocktest.New(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	stub := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	api := httpapi.New(httpapi.Options{Config: srv.Config, Jobs: srv.Jobs, Hub: srv.Hub, Tokens: srv.Tokens,
		Clock: clock, Log: log, Telemetry: echoStore{}, MetricsLib: metrics.New(&brokenStore{}),
		Metrics: stub, GraphQL: stub, Alerts: stub, Experiments: stub,
		Users: auth.NewAuthenticator(srv.Config.AdminToken, store, clock, 5*time.Second), UserStore: store})
	ts := httptest.NewServer(api)
	t.Cleanup(ts.Close)
	return &usersEnv{url: ts.URL, store: store, clock: clock, log: logs}
}

// create makes a user through the API and returns its token.
func (e *usersEnv) create(t *testing.T, name, role string) string {
	t.Helper()
	a := do(t, "POST", e.url+"/v1/users", jobcasttest.AdminToken, fmt.Sprintf(`{"name":%q,"role":%q}`, name, role), nil)
	tok, _ := a.body["token"].(string)
	if a.status != http.StatusCreated || !strings.HasPrefix(tok, "jcu_") || a.body["name"] != name || a.body["role"] != role {
		t.Fatalf("create %s: %d %s", name, a.status, a.raw)
	}
	return tok
}

// TestRoleMatrix: every admin surface, with no credential, a producer key,
// a viewer, an admin user and the admin token.
func TestRoleMatrix(t *testing.T) {
	t.Parallel()
	e := newUsersEnv(t)
	viewer := e.create(t, "vera", "viewer")
	adminUser := e.create(t, "ada", "admin")
	e.create(t, "victim", "viewer")

	const (
		V = jobcast.RoleViewer
		A = jobcast.RoleAdmin
	)
	routes := []struct {
		method, path, body string
		need               jobcast.Role
		ok                 int // the answer once allowed
	}{
		{"GET", "/metrics", "", V, 200},
		{"POST", "/graphql", `{"query":"{ __typename }"}`, V, 200},
		{"GET", "/v1/metrics", "", V, 200},
		{"GET", "/v1/metrics/no_such_metric", "", V, 404},
		{"GET", "/v1/errors", "", V, 200},
		{"GET", "/v1/connections", "", V, 200},
		{"GET", "/v1/alerts", "", V, 200},
		{"GET", "/v1/alerts/rules", "", V, 200},
		{"GET", "/v1/alerts/history", "", V, 200},
		{"GET", "/v1/alerts/silences", "", V, 200},
		{"GET", "/v1/experiments", "", V, 200},
		{"GET", "/v1/experiments/x/results", "", V, 200},
		{"POST", "/v1/sql", "SELECT 1", A, 200},
		{"PUT", "/v1/alerts/rules", "rules: []", A, 200},
		{"POST", "/v1/alerts/silences", `{}`, A, 200},
		{"DELETE", "/v1/alerts/silences/s1", "", A, 200},
		{"POST", "/v1/alerts/test?receiver=slack", "", A, 200},
		{"POST", "/v1/experiments", `{}`, A, 200},
		{"PUT", "/v1/experiments/x", `{}`, A, 200},
		{"POST", "/v1/experiments/x/start", "", A, 200},
		{"POST", "/v1/experiments/x/stop", "", A, 200},
		{"GET", "/v1/users", "", A, 200},
		{"POST", "/v1/users", `{"name":"n-%s","role":"viewer"}`, A, 201},
		{"DELETE", "/v1/users/nobody", "", A, 404},
		{"GET", "/debug/pprof/", "", A, 200},
		{"GET", "/debug/pprof/cmdline", "", A, 200},
		{"GET", "/v1/debug/runtime", "", A, 200},
	}
	callers := []struct {
		name, token string
		role        jobcast.Role // "": not signed in
	}{
		{"none", "", ""},
		{"producer key", jobcasttest.APIKey, ""},
		{"wrong token", "jcu_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ""},
		{"viewer", viewer, V},
		{"admin user", adminUser, A},
		{"admin token", jobcasttest.AdminToken, A},
	}
	for _, rt := range routes {
		for i, c := range callers {
			body := rt.body
			if strings.Contains(body, "%s") {
				body = fmt.Sprintf(body, fmt.Sprint(i))
			}
			a := do(t, rt.method, e.url+rt.path, c.token, body, nil)
			want, code := rt.ok, ""
			switch {
			case c.role == "":
				want, code = 401, "E_UNAUTHORIZED"
			case !c.role.Allows(rt.need):
				want, code = 403, "E_FORBIDDEN"
			}
			if a.status != want || (code != "" && a.errCode() != code) {
				t.Errorf("%s %s as %s: %d %s, want %d %s", rt.method, rt.path, c.name, a.status, a.raw, want, code)
				continue
			}
			if want == 403 && !strings.Contains(a.errMessage(), "needs the admin role") {
				t.Errorf("%s %s as viewer: message %q does not name the role", rt.method, rt.path, a.errMessage())
			}
		}
	}
	if !strings.Contains(e.log.String(), "refused: role") || !strings.Contains(e.log.String(), "user=vera") {
		t.Errorf("a viewer's refused request is not logged with the user:\n%s", e.log.String())
	}
	// A viewer cannot revoke anyone.
	if a := do(t, "DELETE", e.url+"/v1/users/victim", viewer, "", nil); a.status != 403 {
		t.Errorf("viewer revokes: %d", a.status)
	}
	if _, err := e.store.GetUser(context.Background(), "victim"); err != nil {
		t.Errorf("victim after a viewer's revoke: %v", err)
	}
}

// TestUsersAPI: create, list, refuse bad input, revoke; a user revoked on
// another node stops working within the cache lifetime (manual clock);
// no token appears in the logs or in an error body.
func TestUsersAPI(t *testing.T) {
	t.Parallel()
	e := newUsersEnv(t)
	admin := jobcasttest.AdminToken
	vera := e.create(t, "vera", "viewer")
	ada := e.create(t, "ada", "admin")

	a := do(t, "GET", e.url+"/v1/users", admin, "", nil)
	if a.status != 200 || strings.Contains(a.raw, "jcu_") || strings.Contains(a.raw, jobcast.HashUserToken(vera)) ||
		!strings.Contains(a.raw, `"name":"ada"`) || !strings.Contains(a.raw, `"name":"vera"`) {
		t.Errorf("list: %d %s", a.status, a.raw)
	}
	var bodies []string
	for _, c := range []struct {
		body   string
		status int
	}{
		{`{"name":"vera","role":"viewer"}`, 409},
		{`{"name":"admin","role":"admin"}`, 400},
		{`{"name":"a b","role":"viewer"}`, 400},
		{`{"name":"x","role":"owner"}`, 400},
		{`{"name":"x","role":"viewer","token":"jcu_mine"}`, 400},
		{`not json`, 400},
	} {
		a := do(t, "POST", e.url+"/v1/users", ada, c.body, nil)
		if a.status != c.status || a.errMessage() == "" {
			t.Errorf("create %s: %d %s, want %d", c.body, a.status, a.raw, c.status)
		}
		bodies = append(bodies, a.raw)
	}

	// Revoked through this node: at once.
	if a := do(t, "DELETE", e.url+"/v1/users/ada", admin, "", nil); a.status != 200 {
		t.Fatalf("revoke ada: %d %s", a.status, a.raw)
	}
	a = do(t, "GET", e.url+"/v1/users", ada, "", nil)
	if a.status != 401 {
		t.Errorf("revoked admin user: %d", a.status)
	}
	bodies = append(bodies, a.raw)
	if a := do(t, "DELETE", e.url+"/v1/users/ada", admin, "", nil); a.status != 404 {
		t.Errorf("revoke twice: %d", a.status)
	}

	// Revoked through another node (straight in the store): within the
	// cache lifetime, then refused.
	if a := do(t, "GET", e.url+"/v1/alerts", vera, "", nil); a.status != 200 {
		t.Fatalf("vera: %d", a.status)
	}
	if err := e.store.DeleteUser(context.Background(), "vera"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(4 * time.Second)
	if a := do(t, "GET", e.url+"/v1/alerts", vera, "", nil); a.status != 200 {
		t.Errorf("vera within the cache lifetime: %d (the cache did not hold)", a.status)
	}
	e.clock.Advance(time.Second)
	a = do(t, "GET", e.url+"/v1/alerts", vera, "", nil)
	if a.status != 401 {
		t.Errorf("vera 5 s after the revocation: %d", a.status)
	}
	bodies = append(bodies, a.raw)

	logs := e.log.String()
	if !strings.Contains(logs, "user created") || !strings.Contains(logs, "user revoked") {
		t.Errorf("log lacks the user events:\n%s", logs)
	}
	for _, secret := range []string{vera, ada, admin, strings.TrimPrefix(vera, "jcu_"), strings.TrimPrefix(ada, "jcu_")} {
		if strings.Contains(logs, secret) {
			t.Errorf("a token is in the log:\n%s", logs)
		}
		for _, b := range bodies {
			if strings.Contains(b, secret) {
				t.Errorf("a token is in an error body: %s", b)
			}
		}
	}
}
