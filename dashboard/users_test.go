package dashboard_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/dashboard"
	"github.com/jobcast/jobcast/internal/syncbuf"
	"github.com/jobcast/jobcast/sqlite"
)

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]*)">`)

// csrfOf reads the CSRF token the page gives the session c.
func csrfOf(t *testing.T, e *env, c *http.Cookie) string {
	t.Helper()
	rec := e.do(t, http.MethodGet, "/dashboard", nil, "Cookie", dashboard.CookieName+"="+c.Value)
	m := csrfMeta.FindStringSubmatch(rec.Body.String())
	if rec.Code != http.StatusOK || m == nil || m[1] == "" {
		t.Fatalf("page with the session: %d, no CSRF token", rec.Code)
	}
	return m[1]
}

// usersEnv is a dashboard whose logins take users of a SQLite store, with
// a 5 s user cache on the manual clock and the log captured.
func usersEnv(t *testing.T, mod func(*dashboard.Options)) (*env, *sqlite.UserStore, *syncbuf.Buffer) {
	t.Helper()
	store, err := sqlite.OpenUserStore(context.Background(), filepath.Join(t.TempDir(), "jobcast.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	logs := &syncbuf.Buffer{}
	e := newEnv(t, func(o *dashboard.Options) {
		o.Users = auth.NewAuthenticator(adminToken, store, o.Clock, 5*time.Second)
		o.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if mod != nil {
			mod(o)
		}
	})
	return e, store, logs
}

func addUser(t *testing.T, store jobcast.UserStore, name string, role jobcast.Role, created time.Time) string {
	t.Helper()
	tok, hash, err := jobcast.NewUserToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateUser(context.Background(), jobcast.User{Name: name, Role: role, CreatedAt: created, TokenHash: hash}); err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestViewerLogin: a viewer's token logs in, the page names the viewer,
// every data endpoint answers; revoked, the session ends within the cache
// lifetime, and does not come back when the name is taken again.
func TestViewerLogin(t *testing.T) {
	t.Parallel()
	e, store, logs := usersEnv(t, nil)
	created := e.clock.Now().UTC()
	tok := addUser(t, store, "vera", jobcast.RoleViewer, created)

	rec, c := e.login(t, tok)
	if rec.Code != http.StatusSeeOther || c == nil || strings.Contains(c.Value, tok) || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("viewer login: %d %+v", rec.Code, c)
	}
	cookie := []string{"Cookie", dashboard.CookieName + "=" + c.Value}
	page := e.do(t, http.MethodGet, "/dashboard", nil, cookie...)
	if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), "Signed in as <strong>vera</strong> (viewer)") {
		t.Fatalf("page: %d, no 'Signed in as vera (viewer)'", page.Code)
	}
	data := []string{"/dashboard/api/overview", "/dashboard/api/jobs/job-03"}
	for _, p := range data {
		if rec := e.do(t, http.MethodGet, p, nil, cookie...); rec.Code != http.StatusOK {
			t.Errorf("%s as a viewer: %d %s", p, rec.Code, rec.Body)
		}
	}
	// The user token as a Bearer header works too, and the admin token's
	// page says admin.
	if rec := e.do(t, http.MethodGet, data[0], nil, "Authorization", "Bearer "+tok); rec.Code != http.StatusOK {
		t.Errorf("viewer token as Bearer: %d", rec.Code)
	}
	if rec := e.do(t, http.MethodGet, "/dashboard", nil, "Authorization", "Bearer "+adminToken); !strings.Contains(rec.Body.String(), "Signed in as <strong>admin</strong> (admin)") {
		t.Errorf("admin page does not say admin")
	}

	// Revoked on any node: the session works until the cache lifetime is
	// over, then neither it nor the token do.
	if err := store.DeleteUser(context.Background(), "vera"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(5 * time.Second)
	for _, hdr := range [][]string{cookie, {"Authorization", "Bearer " + tok}} {
		if rec := e.do(t, http.MethodGet, data[0], nil, hdr...); rec.Code != http.StatusUnauthorized {
			t.Errorf("revoked vera (%s): %d", hdr[0], rec.Code)
		}
	}
	if rec := e.do(t, http.MethodGet, "/dashboard", nil, cookie...); rec.Code != http.StatusSeeOther {
		t.Errorf("page of a revoked session: %d", rec.Code)
	}
	if rec, c := e.login(t, tok); rec.Code != http.StatusUnauthorized || c != nil {
		t.Errorf("revoked token logs in: %d", rec.Code)
	}
	// Another vera later: the old session stays dead.
	addUser(t, store, "vera", jobcast.RoleViewer, created.Add(time.Minute))
	e.clock.Advance(5 * time.Second)
	if rec := e.do(t, http.MethodGet, data[0], nil, cookie...); rec.Code != http.StatusUnauthorized {
		t.Errorf("old session of a new vera: %d", rec.Code)
	}

	out := logs.String()
	if !strings.Contains(out, "user=vera role=viewer") {
		t.Errorf("the login is not logged with the user:\n%s", out)
	}
	for _, secret := range []string{tok, strings.TrimPrefix(tok, "jcu_"), adminToken, c.Value} {
		if strings.Contains(out, secret) {
			t.Errorf("a secret is in the log:\n%s", out)
		}
	}
}

// TestCSRF: a request authenticated by the session cookie that changes
// state (logout is the dashboard's one) needs the session's CSRF token and
// the server's own origin; login refuses a foreign origin.
func TestCSRF(t *testing.T) {
	t.Parallel()
	e, _, logs := usersEnv(t, func(o *dashboard.Options) {
		o.AllowedOrigins = []string{"*", "https://ops.example.net"}
	})
	const own = "http://example.com" // httptest.NewRequest's host
	form := "application/x-www-form-urlencoded"
	cases := []struct {
		name string
		hdr  func(token string) []string
		body func(token string) string
		want int
	}{
		{"no token", func(string) []string { return []string{"Origin", own} }, nil, 403},
		{"wrong token", func(string) []string { return []string{"Origin", own, dashboard.CSRFHeader, "AAAA"} }, nil, 403},
		{"another session's token", nil, nil, 403}, // filled below
		{"token, foreign origin", func(tk string) []string { return []string{"Origin", "https://evil.example", dashboard.CSRFHeader, tk} }, nil, 403},
		{"token, Origin null", func(tk string) []string { return []string{"Origin", "null", dashboard.CSRFHeader, tk} }, nil, 403},
		{"token, no Origin or Referer", func(tk string) []string { return []string{dashboard.CSRFHeader, tk} }, nil, 403},
		{"token, foreign Referer", func(tk string) []string {
			return []string{"Referer", "https://evil.example/dashboard", dashboard.CSRFHeader, tk}
		}, nil, 403},
		{"token in a form, foreign origin", func(string) []string { return []string{"Origin", "https://evil.example", "Content-Type", form} },
			func(tk string) string { return url.Values{"csrf": {tk}}.Encode() }, 403},
		{"token and own origin", func(tk string) []string { return []string{"Origin", own, dashboard.CSRFHeader, tk} }, nil, 303},
		{"token and own Referer", func(tk string) []string {
			return []string{"Referer", own + "/dashboard?range=1h", dashboard.CSRFHeader, tk}
		}, nil, 303},
		{"token and an allowed origin", func(tk string) []string {
			return []string{"Origin", "https://ops.example.net", dashboard.CSRFHeader, tk}
		}, nil, 303},
		{"token in the form and own origin", func(string) []string { return []string{"Origin", own, "Content-Type", form} },
			func(tk string) string { return url.Values{"csrf": {tk}}.Encode() }, 303},
	}
	_, other := e.login(t, adminToken)
	otherToken := csrfOf(t, e, other)
	cases[2].hdr = func(string) []string { return []string{"Origin", own, dashboard.CSRFHeader, otherToken} }
	for _, c := range cases {
		_, sess := e.login(t, adminToken)
		tk := csrfOf(t, e, sess)
		hdr := append([]string{"Cookie", dashboard.CookieName + "=" + sess.Value}, c.hdr(tk)...)
		var body *strings.Reader
		if c.body != nil {
			body = strings.NewReader(c.body(tk))
		} else {
			body = strings.NewReader("")
		}
		rec := e.do(t, http.MethodPost, "/dashboard/logout", body, hdr...)
		if rec.Code != c.want {
			t.Errorf("logout, %s: %d %s, want %d", c.name, rec.Code, rec.Body, c.want)
			continue
		}
		still := e.do(t, http.MethodGet, "/dashboard/api/overview", nil, "Cookie", dashboard.CookieName+"="+sess.Value).Code
		if c.want == 403 {
			if !strings.Contains(rec.Body.String(), `"code":"E_FORBIDDEN"`) || !strings.Contains(rec.Body.String(), "CSRF check failed") {
				t.Errorf("logout, %s: body %s", c.name, rec.Body)
			}
			if strings.Contains(rec.Body.String(), tk) {
				t.Errorf("logout, %s: the CSRF token is in the error body", c.name)
			}
			if still != http.StatusOK {
				t.Errorf("logout, %s: refused, yet the session ended (%d)", c.name, still)
			}
		} else if still != http.StatusUnauthorized {
			t.Errorf("logout, %s: the session still works (%d)", c.name, still)
		}
	}
	// A Bearer request carries no ambient credential: nothing to check
	// (and logout without a session just clears the cookie).
	if rec := e.do(t, http.MethodPost, "/dashboard/logout", nil, "Authorization", "Bearer "+adminToken, "Origin", "https://evil.example"); rec.Code != http.StatusSeeOther {
		t.Errorf("logout with Bearer: %d", rec.Code)
	}

	// Login: a cross-site form post is refused before the token is looked
	// at; the own origin, an allowed one, and no Origin (curl) pass.
	for _, c := range []struct {
		hdr  []string
		want int
	}{
		{[]string{"Origin", "https://evil.example"}, 403},
		{[]string{"Origin", "null"}, 403},
		{[]string{"Referer", "https://evil.example/x"}, 403},
		{[]string{"Origin", own}, 303},
		{[]string{"Origin", "https://ops.example.net"}, 303},
		{nil, 303},
	} {
		rec, sess := e.login(t, adminToken, c.hdr...)
		if rec.Code != c.want || (c.want == 403) != (sess == nil) {
			t.Errorf("login with %q: %d, cookie %v", c.hdr, rec.Code, sess != nil)
		}
	}
	if out := logs.String(); !strings.Contains(out, "CSRF check failed") || strings.Contains(out, adminToken) || strings.Contains(out, otherToken) {
		t.Errorf("log:\n%s", out)
	}
}

// TestSecurityHeaders: every dashboard response, pages, data, assets,
// errors and the login answer, forbids framing and sniffing and sends no
// referrer elsewhere.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	bearer := []string{"Authorization", "Bearer " + adminToken}
	form := url.Values{"token": {"wrong"}}.Encode()
	for _, r := range []struct {
		method, path string
		hdr          []string
	}{
		{"GET", "/dashboard", bearer},
		{"GET", "/dashboard", nil},
		{"GET", "/dashboard/login", nil},
		{"POST", "/dashboard/login", []string{"Content-Type", "application/x-www-form-urlencoded"}},
		{"POST", "/dashboard/logout", nil},
		{"GET", "/dashboard/api/overview", bearer},
		{"GET", "/dashboard/api/overview", nil},
		{"GET", "/dashboard/assets/app.js", nil},
		{"GET", "/dashboard/nope", nil},
	} {
		rec := e.do(t, r.method, r.path, strings.NewReader(form), r.hdr...)
		h := rec.Header()
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("%s %s: CSP %q", r.method, r.path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "same-origin" {
			t.Errorf("%s %s: headers %v", r.method, r.path, h)
		}
	}
}

// TestViewerStream: the live stream takes a viewer's session, and ends
// with an auth event once the viewer is revoked and the cache lifetime is
// over.
func TestViewerStream(t *testing.T) {
	t.Parallel()
	e, store, _ := usersEnv(t, nil)
	tok := addUser(t, store, "vera", jobcast.RoleViewer, e.clock.Now())
	_, c := e.login(t, tok)
	srv := httptest.NewServer(e.dash)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/dashboard/api/stream", nil)
	req.AddCookie(c)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream as a viewer: %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "data:") {
	}
	if err := store.DeleteUser(context.Background(), "vera"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(5 * time.Second)
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rest), "event: auth\n") {
		t.Errorf("stream of a revoked viewer did not end with an auth event:\n%.300s", rest)
	}
}
