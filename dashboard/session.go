package dashboard

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
)

// CookieName is the session cookie's name.
const CookieName = "jobcast_dashboard"

// sessionVersion prefixes every session, so that a later format can refuse
// this one cleanly. v1 sessions (before named users) are refused: their
// holders log in again once.
const sessionVersion = "v2"

// maxLoginBody bounds the login form.
const maxLoginBody = 4 << 10

// sessions signs and checks session cookies. A session is
// "v2.<expiry unix seconds>.<random id>.<user name, base64url>.<role>.<user
// created, unix ns>" and an HMAC-SHA256 of it under a key derived from the
// admin token; the cookie never holds a token. The user's creation time
// ties the session to that user: revoked and created again under the same
// name, it is another user, and the old sessions stay dead.
type sessions struct {
	key []byte
	ttl time.Duration

	mu sync.Mutex
	// revoked holds logged-out session ids until they expire, so that a
	// copied cookie stops working at logout on this node.
	revoked map[string]time.Time
}

// session is a checked session cookie.
type session struct {
	id      string
	name    string
	role    jobcast.Role
	created time.Time
}

func newSessions(adminToken string, ttl time.Duration) *sessions {
	m := hmac.New(sha256.New, []byte(adminToken))
	m.Write([]byte("jobcast dashboard session key v1"))
	return &sessions{key: m.Sum(nil), ttl: ttl, revoked: map[string]time.Time{}}
}

func (s *sessions) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// issue returns a new session's cookie value for p and its expiry.
func (s *sessions) issue(p auth.Principal, now time.Time) (string, time.Time, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", time.Time{}, fmt.Errorf("session id: %w", err)
	}
	var created int64
	if !p.CreatedAt.IsZero() {
		created = p.CreatedAt.UnixNano()
	}
	exp := now.Add(s.ttl).Truncate(time.Second)
	payload := strings.Join([]string{sessionVersion, strconv.FormatInt(exp.Unix(), 10), hex.EncodeToString(id),
		base64.RawURLEncoding.EncodeToString([]byte(p.Name)), string(p.Role), strconv.FormatInt(created, 10)}, ".")
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload)), exp, nil
}

// check returns a valid, unexpired, not revoked session. Whether its user
// still exists is the Authenticator's to say (Handler.principal).
func (s *sessions) check(value string, now time.Time) (session, bool) {
	i := strings.LastIndexByte(value, '.')
	if i < 0 {
		return session{}, false
	}
	payload, sig := value[:i], value[i+1:]
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(payload)) {
		return session{}, false
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 6 || parts[0] != sessionVersion {
		return session{}, false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || !now.Before(time.Unix(exp, 0)) {
		return session{}, false
	}
	name, err := base64.RawURLEncoding.DecodeString(parts[3])
	if err != nil || len(name) == 0 {
		return session{}, false
	}
	created, err := strconv.ParseInt(parts[5], 10, 64)
	if err != nil {
		return session{}, false
	}
	ss := session{id: parts[2], name: string(name), role: jobcast.Role(parts[4])}
	if created != 0 {
		ss.created = time.Unix(0, created).UTC()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, gone := s.revoked[ss.id]; gone {
		return session{}, false
	}
	return ss, true
}

// revoke ends a session on this node before it expires.
func (s *sessions) revoke(value string, now time.Time) {
	ss, ok := s.check(value, now)
	if !ok {
		return
	}
	exp, _ := strconv.ParseInt(strings.Split(value, ".")[1], 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, t := range s.revoked {
		if !now.Before(t) {
			delete(s.revoked, k)
		}
	}
	s.revoked[ss.id] = time.Unix(exp, 0)
}

// caller is who a request speaks for, and the session it came with (id ""
// for a Bearer request, which needs no CSRF check).
type caller struct {
	auth.Principal
	sessionID string
}

// principal returns who r speaks for: a Bearer secret (the admin token or
// a user token), else a session cookie whose user still exists with the
// role the session was issued for. err is a user store failure.
func (h *Handler) principal(r *http.Request) (caller, bool, error) {
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		p, ok, err := h.users.Authenticate(r.Context(), strings.TrimSpace(a[7:]))
		return caller{Principal: p}, ok, err
	}
	c, err := r.Cookie(CookieName)
	if err != nil {
		return caller{}, false, nil
	}
	ss, ok := h.sessions.check(c.Value, h.opt.Clock.Now())
	if !ok {
		return caller{}, false, nil
	}
	p, ok, err := h.users.Session(r.Context(), ss.name, ss.created)
	if err != nil || !ok || p.Role != ss.role {
		return caller{}, false, err
	}
	return caller{Principal: p, sessionID: ss.id}, true, nil
}

// authorized says whether r carries a valid session cookie or a known
// Bearer secret. A user store failure counts as no (and is logged).
func (h *Handler) authorized(r *http.Request) bool {
	_, ok, err := h.principal(r)
	if err != nil {
		h.opt.Log.Error("dashboard: user lookup failed", "path", r.URL.Path, "err", err)
	}
	return ok
}

// secure says whether the session cookie must be Secure: the request came
// over TLS (or a trusted proxy says so), or the server's public URL is
// https.
func (h *Handler) secure(r *http.Request) bool {
	return h.opt.Scheme(r) == "https" || strings.HasPrefix(strings.ToLower(h.opt.PublicURL), "https://")
}

func (h *Handler) cookie(r *http.Request, value string, exp time.Time) *http.Cookie {
	c := &http.Cookie{
		Name: CookieName, Value: value, Path: Prefix,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: h.secure(r),
	}
	if value == "" {
		c.MaxAge = -1
	} else {
		c.Expires = exp
		c.MaxAge = int(exp.Sub(h.opt.Clock.Now()).Seconds())
	}
	return c
}

// pages are the HTML templates.
type pages struct {
	index *template.Template
	login *template.Template
}

func parsePages(static fs.FS) (*pages, error) {
	index, err := template.ParseFS(static, "index.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard: page: %w", err)
	}
	login, err := template.ParseFS(static, "login.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard: login page: %w", err)
	}
	return &pages{index: index, login: login}, nil
}

// indexView is what the page's header shows: who is signed in, and the
// CSRF token its forms send ("" for a Bearer request, which has no
// session to protect).
type indexView struct {
	Name string
	Role jobcast.Role
	CSRF string
}

// renderIndex serves the page to c.
func (h *Handler) renderIndex(w http.ResponseWriter, c caller) {
	v := indexView{Name: c.Name, Role: c.Role}
	if c.sessionID != "" {
		v.CSRF = h.csrfToken(c.sessionID)
	}
	var buf bytes.Buffer
	if err := h.pages.index.Execute(&buf, v); err != nil {
		h.opt.Log.Error("render dashboard page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// loginView is what the login template shows.
type loginView struct {
	Next  string
	Error string
}

func (h *Handler) renderLogin(w http.ResponseWriter, status int, v loginView) {
	var buf bytes.Buffer
	if err := h.pages.login.Execute(&buf, v); err != nil {
		h.opt.Log.Error("render login page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if h.authorized(r) {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	h.renderLogin(w, http.StatusOK, loginView{Next: next})
}

// login checks the token from the form (the admin token or a user token)
// and starts a session for its principal. A form posted from another
// site is refused (login CSRF: it would sign the victim in as the
// attacker).
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if err := h.checkOrigin(r, false); err != nil {
		h.forbidden(w, r, err)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		h.renderLogin(w, http.StatusBadRequest, loginView{Next: Prefix, Error: "The form could not be read; try again."})
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	p, ok, err := h.users.Authenticate(r.Context(), strings.TrimSpace(r.PostForm.Get("token")))
	if err != nil {
		h.opt.Log.Error("dashboard login: user lookup failed", "err", err)
		h.renderLogin(w, http.StatusServiceUnavailable, loginView{Next: next, Error: "Users cannot be checked right now; try again shortly."})
		return
	}
	if !ok {
		h.opt.Log.Info("dashboard login refused", "remote", r.RemoteAddr)
		h.renderLogin(w, http.StatusUnauthorized, loginView{Next: next, Error: "That is not the admin token or a user token."})
		return
	}
	value, exp, err := h.sessions.issue(p, h.opt.Clock.Now())
	if err != nil {
		h.opt.Log.Error("dashboard login", "err", err)
		h.renderLogin(w, http.StatusInternalServerError, loginView{Next: next, Error: "Could not start a session; try again."})
		return
	}
	h.opt.Log.Info("dashboard login", "user", p.Name, "role", string(p.Role), "remote", r.RemoteAddr)
	http.SetCookie(w, h.cookie(r, value, exp))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session and clears the cookie. With a live session it
// is a state change like any other: the CSRF check applies (a foreign page
// must not sign the operator out). Without one there is nothing to end.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if c, err := r.Cookie(CookieName); err == nil {
		if ss, ok := h.sessions.check(c.Value, h.opt.Clock.Now()); ok {
			if err := h.checkCSRF(r, ss.id); err != nil {
				h.forbidden(w, r, err)
				return
			}
			h.sessions.revoke(c.Value, h.opt.Clock.Now())
		}
	}
	http.SetCookie(w, h.cookie(r, "", time.Time{}))
	http.Redirect(w, r, Prefix+"/login", http.StatusSeeOther)
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
