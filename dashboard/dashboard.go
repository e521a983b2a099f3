package dashboard

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/hub"
	"github.com/jobcast/jobcast/internal/httputil"
	"github.com/jobcast/jobcast/metrics"
	"github.com/jobcast/jobcast/protocol"
)

//go:embed assets
var assets embed.FS

// Prefix is the path the dashboard is mounted at.
const Prefix = "/dashboard"

// Live gives this node's live figures: the hub is one.
type Live interface {
	// ConnCount is the number of open WebSocket connections.
	ConnCount() int64
	// Totals are the hub's counters since it started.
	Totals() hub.Totals
	// Connections lists the open connections of a job ("" for all).
	Connections(jobID string) []hub.ConnInfo
}

// Jobs looks up a job's current state: *jobs.Service is one.
type Jobs interface {
	Get(ctx context.Context, id string) (*jobcast.Job, error)
}

// Options are the dashboard's dependencies.
type Options struct {
	// Metrics computes every figure of the overview. Required.
	Metrics *metrics.Library
	// Events is read for the job inspector's timeline; nil leaves the
	// timeline empty.
	Events jobcast.TelemetryStore
	// Jobs gives the inspector a job's state; nil leaves it out.
	Jobs Jobs
	// Live gives the open connections; nil shows none.
	Live Live
	// Nodes holds every node's live figures: in cluster mode the live
	// counts are the sum over all nodes, with this node's (NodeID) taken
	// fresh from Live. nil counts this node only.
	Nodes  jobcast.NodeRegistry
	NodeID string
	// Alerts fills the alerts panel; nil (no alerting on this node) makes
	// the panel say that alerts are not configured.
	Alerts Alerts
	// Experiments fills the experiments panel; nil makes it say that
	// experiments are not configured.
	Experiments Experiments
	// AdminToken is what the login page takes. Sessions are signed with a
	// key derived from it, so changing the token logs everyone out and every
	// node with the same token accepts the same sessions. Required.
	AdminToken string
	// Users signs in user tokens (auth.Authenticator) and says whether a
	// session's user still exists; nil accepts the admin token only.
	Users *auth.Authenticator
	// AllowedOrigins are origins besides this server's own that may post
	// to the dashboard (JOBCAST_ALLOWED_ORIGINS; "*" is ignored here).
	AllowedOrigins []string
	// PublicURL, when it starts with https://, marks the session cookie
	// Secure even for requests that arrive over plain HTTP (TLS ended at a
	// proxy that is not in TrustedProxies).
	PublicURL string
	// Scheme returns "https" for requests that came over TLS (directly or
	// through a trusted proxy); nil looks at r.TLS only.
	Scheme func(r *http.Request) string
	// SessionTTL is how long a login lasts (default 12h).
	SessionTTL time.Duration
	// StreamInterval is how often the live stream sends a fresh overview
	// (default 2s; the page calls data older than 3 intervals stale).
	StreamInterval time.Duration
	Clock          jobcast.Clock
	Log            *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.SessionTTL <= 0 {
		o.SessionTTL = 12 * time.Hour
	}
	if o.StreamInterval <= 0 {
		o.StreamInterval = 2 * time.Second
	}
	if o.Clock == nil {
		o.Clock = jobcast.SystemClock{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Scheme == nil {
		o.Scheme = func(r *http.Request) string {
			if r.TLS != nil {
				return "https"
			}
			return "http"
		}
	}
	return o
}

// Handler serves everything under /dashboard. Mount it at both "/dashboard"
// and "/dashboard/".
type Handler struct {
	opt      Options
	mux      *http.ServeMux
	sessions *sessions
	users    *auth.Authenticator
	static   http.Handler
	pages    *pages
	cache    overviewCache
	expCache experimentsCache
	nodes    nodesCache

	// done ends the live streams, so that http.Server.Shutdown (which
	// waits for handlers) is not held up by an open page.
	done      chan struct{}
	closeOnce sync.Once
}

// New returns the dashboard handler.
func New(opt Options) (*Handler, error) {
	if opt.Metrics == nil {
		return nil, errors.New("dashboard: no metrics library")
	}
	if opt.AdminToken == "" {
		return nil, errors.New("dashboard: no admin token")
	}
	opt = opt.withDefaults()
	if opt.Users == nil {
		opt.Users = auth.NewAuthenticator(opt.AdminToken, nil, opt.Clock, 0)
	}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, fmt.Errorf("dashboard: assets: %w", err)
	}
	pg, err := parsePages(static)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		opt:      opt,
		mux:      http.NewServeMux(),
		sessions: newSessions(opt.AdminToken, opt.SessionTTL),
		users:    opt.Users,
		static:   http.StripPrefix(Prefix+"/assets/", http.FileServerFS(static)),
		pages:    pg,
		done:     make(chan struct{}),
	}
	h.mux.HandleFunc("GET "+Prefix, h.index)
	h.mux.HandleFunc("GET "+Prefix+"/{$}", h.index)
	h.mux.HandleFunc("GET "+Prefix+"/login", h.loginPage)
	h.mux.HandleFunc("POST "+Prefix+"/login", h.login)
	h.mux.HandleFunc("POST "+Prefix+"/logout", h.logout)
	h.mux.HandleFunc("GET "+Prefix+"/assets/", h.asset)
	h.mux.HandleFunc("GET "+Prefix+"/api/overview", h.data(h.overview))
	h.mux.HandleFunc("GET "+Prefix+"/api/stream", h.data(h.stream))
	h.mux.HandleFunc("GET "+Prefix+"/api/jobs/{jobId}", h.data(h.job))
	h.mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		httputil.WriteError(w, http.StatusNotFound, jobcast.Errorf("E_NOT_FOUND", "no route for %s %s", r.Method, r.URL.Path))
	})
	return h, nil
}

// Close ends the open live streams; later streams end at once. Register it
// with http.Server.RegisterOnShutdown.
func (h *Handler) Close() {
	h.closeOnce.Do(func() { close(h.done) })
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// The page runs no inline script or style and talks only to this
	// server; it must not be framed (the login form would be clickjackable).
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "+
		"frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: under no-referrer browsers send
	// "Origin: null" on the page's own POSTs, and the CSRF check needs
	// the real origin (csrf.go).
	hd.Set("Referrer-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

// asset serves the embedded CSS and JavaScript. They hold no data, so they
// need no session (the login page uses the stylesheet).
func (h *Handler) asset(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache")
	h.static.ServeHTTP(w, r)
}

// data guards a JSON endpoint: a session cookie or the admin token as a
// Bearer header, else 401 and nothing else.
func (h *Handler) data(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Every data endpoint reads: any role may, viewer included.
		if !h.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="jobcast-admin"`)
			httputil.WriteError(w, http.StatusUnauthorized,
				jobcast.Errorf(protocol.ErrUnauthorized, "log in at %s/login or send the admin token or a user token (Authorization: Bearer <token>)", Prefix))
			return
		}
		next(w, r)
	}
}

// index serves the page to a logged-in browser and sends anyone else to the
// login page, keeping the query (range and filters) for after the login.
func (h *Handler) index(w http.ResponseWriter, r *http.Request) {
	c, ok, err := h.principal(r)
	if err != nil {
		h.opt.Log.Error("dashboard: user lookup failed", "path", r.URL.Path, "err", err)
	}
	if !ok {
		next := Prefix
		if r.URL.RawQuery != "" {
			next += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, Prefix+"/login?next="+urlQueryEscape(next), http.StatusSeeOther)
		return
	}
	h.renderIndex(w, c)
}

// fail answers err; internal errors are logged and answered without their
// text.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if jobcast.ErrorCode(err) == protocol.ErrInternal {
		h.opt.Log.Error("dashboard request failed", "path", r.URL.Path, "err", err)
	}
	httputil.WriteError(w, 0, err)
}

// safeNext returns where to go after the login: a path inside the
// dashboard, never another site.
func safeNext(next string) string {
	if next == Prefix || strings.HasPrefix(next, Prefix+"?") || strings.HasPrefix(next, Prefix+"/?") {
		if !strings.ContainsAny(next, "\\\r\n") {
			return next
		}
	}
	return Prefix
}
