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

	"github.com/jobcast/jobcast/auth"
)

// CookieName is the session cookie's name.
const CookieName = "jobcast_dashboard"

// sessionVersion prefixes every session, so that a later format can refuse
// this one cleanly.
const sessionVersion = "v1"

// maxLoginBody bounds the login form.
const maxLoginBody = 4 << 10

// sessions signs and checks session cookies. A session is
// "v1.<expiry unix seconds>.<random id>" and an HMAC-SHA256 of it under a
// key derived from the admin token; the cookie never holds the token.
type sessions struct {
	key []byte
	ttl time.Duration

	mu sync.Mutex
	// revoked holds logged-out session ids until they expire, so that a
	// copied cookie stops working at logout on this node.
	revoked map[string]time.Time
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

// issue returns a new session's cookie value and its expiry.
func (s *sessions) issue(now time.Time) (string, time.Time, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", time.Time{}, fmt.Errorf("session id: %w", err)
	}
	exp := now.Add(s.ttl).Truncate(time.Second)
	payload := sessionVersion + "." + strconv.FormatInt(exp.Unix(), 10) + "." + hex.EncodeToString(id)
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload)), exp, nil
}

// check returns the session id of a valid, unexpired, not revoked cookie
// value.
func (s *sessions) check(value string, now time.Time) (string, bool) {
	i := strings.LastIndexByte(value, '.')
	if i < 0 {
		return "", false
	}
	payload, sig := value[:i], value[i+1:]
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(payload)) {
		return "", false
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 3 || parts[0] != sessionVersion {
		return "", false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || !now.Before(time.Unix(exp, 0)) {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, gone := s.revoked[parts[2]]; gone {
		return "", false
	}
	return parts[2], true
}

// revoke ends a session on this node before it expires.
func (s *sessions) revoke(value string, now time.Time) {
	id, ok := s.check(value, now)
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
	s.revoked[id] = time.Unix(exp, 0)
}

// authorized says whether r carries a valid session cookie or the admin
// token as a Bearer header.
func (h *Handler) authorized(r *http.Request) bool {
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return auth.EqualSecret(strings.TrimSpace(a[7:]), h.opt.AdminToken)
	}
	c, err := r.Cookie(CookieName)
	if err != nil {
		return false
	}
	_, ok := h.sessions.check(c.Value, h.opt.Clock.Now())
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

// pages are the rendered HTML pages.
type pages struct {
	index []byte
	login *template.Template
}

func parsePages(static fs.FS) (*pages, error) {
	index, err := fs.ReadFile(static, "index.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	login, err := template.ParseFS(static, "login.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard: login page: %w", err)
	}
	return &pages{index: index, login: login}, nil
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

// login checks the admin token from the form and starts a session.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		h.renderLogin(w, http.StatusBadRequest, loginView{Next: Prefix, Error: "The form could not be read; try again."})
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	if !auth.EqualSecret(strings.TrimSpace(r.PostForm.Get("token")), h.opt.AdminToken) {
		h.opt.Log.Info("dashboard login refused", "remote", r.RemoteAddr)
		h.renderLogin(w, http.StatusUnauthorized, loginView{Next: next, Error: "That is not the admin token."})
		return
	}
	value, exp, err := h.sessions.issue(h.opt.Clock.Now())
	if err != nil {
		h.opt.Log.Error("dashboard login", "err", err)
		h.renderLogin(w, http.StatusInternalServerError, loginView{Next: next, Error: "Could not start a session; try again."})
		return
	}
	http.SetCookie(w, h.cookie(r, value, exp))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session and clears the cookie.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(CookieName); err == nil {
		h.sessions.revoke(c.Value, h.opt.Clock.Now())
	}
	http.SetCookie(w, h.cookie(r, "", time.Time{}))
	http.Redirect(w, r, Prefix+"/login", http.StatusSeeOther)
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
