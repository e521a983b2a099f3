package httpapi

import (
	"net/http"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/internal/httputil"
	"github.com/jobcast/jobcast/protocol"
)

// The admin surfaces take a Bearer secret only: the admin token or a user
// token (auth.Authenticator). They never read the dashboard's session
// cookie (whose Path is /dashboard, so browsers do not send it here
// anyway): with no ambient credential a foreign page cannot make a
// browser call them, and they need no CSRF check. The dashboard's own
// endpoints, which do take the cookie, check CSRF themselves.

// viewer guards a read-only surface: any signed-in role.
func (a *API) viewer(next http.HandlerFunc) http.HandlerFunc {
	return a.require(jobcast.RoleViewer, next)
}

// admin guards a surface that changes things or reaches past the
// telemetry (SQL, users, profiles): the admin role.
func (a *API) admin(next http.HandlerFunc) http.HandlerFunc {
	return a.require(jobcast.RoleAdmin, next)
}

// readOrAdmin guards an API whose GETs read (viewer) and whose other
// methods change things (admin): alerts, silences, experiments.
func (a *API) readOrAdmin(next http.HandlerFunc) http.HandlerFunc {
	read, write := a.viewer(next), a.admin(next)
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			read(w, r)
			return
		}
		write(w, r)
	}
}

// require answers 401 without a known secret, 403 E_FORBIDDEN for a role
// that does not allow need, and otherwise calls next with the principal in
// the request's context.
func (a *API) require(need jobcast.Role, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok, err := a.auth.Authenticate(r.Context(), bearer(r))
		if err != nil {
			a.opt.Log.Error("user lookup failed", "method", r.Method, "path", r.URL.Path, "err", err)
			w.Header().Set("Retry-After", "1")
			httputil.WriteError(w, http.StatusServiceUnavailable, jobcast.Errorf(protocol.ErrUnavailable, "user tokens cannot be checked right now; retry shortly"))
			return
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="jobcast-admin"`)
			httputil.WriteError(w, http.StatusUnauthorized, jobcast.Errorf(protocol.ErrUnauthorized,
				"missing or unknown token: send the admin token or a user token (Authorization: Bearer <token>)"))
			return
		}
		if !p.Role.Allows(need) {
			a.opt.Log.Info("refused: role", "user", p.Name, "role", string(p.Role), "need", string(need), "method", r.Method, "path", r.URL.Path)
			httputil.WriteError(w, http.StatusForbidden, jobcast.Errorf(jobcast.CodeForbidden,
				"%s %s needs the %s role; user %q has the %s role", r.Method, r.URL.Path, need, p.Name, p.Role))
			return
		}
		next(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	}
}
