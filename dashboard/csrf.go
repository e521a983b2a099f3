package dashboard

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/httputil"
)

// CSRFHeader carries the CSRF token on a state-changing request that a
// script sends; a plain form sends it as the field CSRFField instead.
const (
	CSRFHeader = "X-CSRF-Token"
	CSRFField  = "csrf"
)

// csrfToken is the token of a session: an HMAC of its id under the
// session key, so it needs no storage, differs per session and cannot be
// made without the key. The page gets it in a meta tag and in its forms.
func (h *Handler) csrfToken(sessionID string) string {
	m := hmac.New(sha256.New, h.sessions.key)
	m.Write([]byte("jobcast dashboard csrf v1\x00"))
	m.Write([]byte(sessionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF is the check on a state-changing request authenticated by the
// session sessionID: it must come from the server's own origin, and carry
// the session's CSRF token. SameSite=Strict already keeps the cookie off
// cross-site requests in current browsers; this holds where it does not
// (older browsers, a sibling subdomain that counts as same-site).
func (h *Handler) checkCSRF(r *http.Request, sessionID string) error {
	if err := h.checkOrigin(r, true); err != nil {
		return err
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if err := r.ParseForm(); err == nil {
			got = r.PostForm.Get(CSRFField)
		}
	}
	if got == "" {
		return errors.New("no CSRF token (header " + CSRFHeader + ")")
	}
	if !hmac.Equal([]byte(got), []byte(h.csrfToken(sessionID))) {
		return errors.New("wrong CSRF token")
	}
	return nil
}

// checkOrigin refuses a request whose Origin (or, without one, Referer) is
// not this server's: its own scheme and host, the public URL, or an entry
// of AllowedOrigins ("*" there opens WebSockets to every origin, never
// this check). required says whether a request with neither header is
// refused: yes for session requests (browsers send Origin on every POST),
// no for the login form, which non-browser clients may post.
func (h *Handler) checkOrigin(r *http.Request, required bool) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		if ref := r.Header.Get("Referer"); ref != "" {
			if u, err := url.Parse(ref); err == nil && u.Scheme != "" && u.Host != "" {
				origin = u.Scheme + "://" + u.Host
			} else {
				origin = "null"
			}
		}
	}
	if origin == "" {
		if required {
			return errors.New("no Origin or Referer header")
		}
		return nil
	}
	if h.ownOrigin(r, origin) {
		return nil
	}
	return errors.New("origin " + origin + " is not this server's")
}

func (h *Handler) ownOrigin(r *http.Request, origin string) bool {
	if strings.EqualFold(origin, h.opt.Scheme(r)+"://"+r.Host) {
		return true
	}
	if pu, err := url.Parse(h.opt.PublicURL); err == nil && pu.Host != "" && strings.EqualFold(origin, pu.Scheme+"://"+pu.Host) {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	for _, o := range h.opt.AllowedOrigins {
		if o != "*" && (strings.EqualFold(o, origin) || strings.EqualFold(o, u.Host)) {
			return true
		}
	}
	return false
}

// forbidden answers a failed CSRF or origin check: 403 E_FORBIDDEN, the
// reason in the message (it names headers, never a token), and a log line.
func (h *Handler) forbidden(w http.ResponseWriter, r *http.Request, why error) {
	h.opt.Log.Warn("dashboard: CSRF check failed", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "why", why.Error())
	httputil.WriteError(w, http.StatusForbidden, jobcast.Errorf(jobcast.CodeForbidden, "CSRF check failed: %s", why.Error()))
}
