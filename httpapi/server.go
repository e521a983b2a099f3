package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/hub"
	"github.com/jobcast/jobcast/internal/httputil"
	"github.com/jobcast/jobcast/internal/ratelimit"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/metrics"
	"github.com/jobcast/jobcast/protocol"
)

// Options are the API's dependencies.
type Options struct {
	Config  jobcast.Config
	Jobs    *jobs.Service
	Hub     *hub.Hub
	Tokens  *auth.Tokens
	APIKeys *auth.APIKeys
	Clock   jobcast.Clock
	Log     *slog.Logger
	// Ready reports whether dependencies are healthy, for /readyz.
	Ready func() error
	// Metrics serves the Prometheus exposition at GET /metrics (admin
	// token); nil leaves the route out.
	Metrics http.Handler
	// Telemetry answers POST /v1/sql (admin token); nil leaves it out.
	Telemetry jobcast.TelemetryStore
	// MetricsLib answers GET /v1/metrics and GET /v1/metrics/{name} (admin
	// token); nil leaves them out. (Metrics is the Prometheus exposition.)
	MetricsLib *metrics.Library
	// GraphQL serves POST /graphql (admin token); nil leaves it out.
	GraphQL http.Handler
	// Dashboard serves /dashboard and everything under it; it does its own
	// admin auth (a login page and session cookie, or the admin token as a
	// Bearer header). nil leaves it out.
	Dashboard http.Handler
	// Alerts serves /v1/alerts and everything under it (admin token);
	// nil leaves them out.
	Alerts http.Handler
	// Experiments serves /v1/experiments and everything under it (admin
	// token); nil leaves them out.
	Experiments http.Handler
	// Users turns Bearer secrets into principals (roles.go); nil: one made
	// from Config.AdminToken and UserStore.
	Users *auth.Authenticator
	// UserStore serves /v1/users (admin role); nil leaves it out, and only
	// the admin token signs in.
	UserStore jobcast.UserStore
}

// API is the HTTP handler of a jobcast node.
type API struct {
	opt      Options
	mux      *http.ServeMux
	reqRate  *ratelimit.Limiter
	evRate   *ratelimit.Limiter // producer events per API key; nil: no limit (ratelimit.go)
	trust    *httputil.ProxyTrust
	auth     *auth.Authenticator
	draining atomic.Bool
	notReady atomic.Bool
}

// New returns the API handler with every route mounted.
func New(opt Options) *API {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	// Config.Validate has checked the proxy entries.
	trust, _ := httputil.ParseProxyTrust(opt.Config.TrustedProxies)
	a := &API{opt: opt, mux: http.NewServeMux(), reqRate: ratelimit.New(opt.Config.RequestsPerSecPerIP, 0), trust: trust}
	a.evRate = newEventLimiter(opt.Config)
	a.mux.HandleFunc("GET /healthz", a.healthz)
	a.mux.HandleFunc("GET /readyz", a.readyz)
	a.mux.Handle("GET /ws/progress", opt.Hub)
	a.mux.HandleFunc("POST /v1/jobs", a.producer(a.createJob))
	a.mux.HandleFunc("GET /v1/jobs/{jobId}", a.producer(a.getJob))
	a.mux.HandleFunc("POST /v1/jobs/{jobId}/events", a.producer(a.appendEvents))
	a.mux.HandleFunc("POST /v1/jobs/{jobId}/token", a.producer(a.newToken))
	a.mux.HandleFunc("DELETE /v1/jobs/{jobId}/tokens", a.producer(a.revokeTokens))
	a.auth = opt.Users
	if a.auth == nil {
		a.auth = auth.NewAuthenticator(opt.Config.AdminToken, opt.UserStore, opt.Clock, 0)
	}
	a.mux.HandleFunc("GET /v1/connections", a.viewer(a.connections))
	a.mux.HandleFunc("GET /v1/errors", a.viewer(a.errorCatalog))
	if opt.Telemetry != nil {
		a.mux.HandleFunc("POST /v1/sql", a.admin(a.sql))
	}
	if opt.Metrics != nil {
		a.mux.HandleFunc("GET /metrics", a.viewer(opt.Metrics.ServeHTTP))
	}
	if opt.MetricsLib != nil {
		a.mux.HandleFunc("GET /v1/metrics", a.viewer(a.metricDefinitions))
		a.mux.HandleFunc("GET /v1/metrics/{name}", a.viewer(a.metric))
	}
	if opt.GraphQL != nil {
		a.mux.HandleFunc("POST /graphql", a.viewer(opt.GraphQL.ServeHTTP))
	}
	if opt.Alerts != nil {
		a.mux.HandleFunc("/v1/alerts", a.readOrAdmin(opt.Alerts.ServeHTTP))
		a.mux.HandleFunc("/v1/alerts/", a.readOrAdmin(opt.Alerts.ServeHTTP))
	}
	if opt.Experiments != nil {
		a.mux.HandleFunc("/v1/experiments", a.readOrAdmin(opt.Experiments.ServeHTTP))
		a.mux.HandleFunc("/v1/experiments/", a.readOrAdmin(opt.Experiments.ServeHTTP))
	}
	if opt.UserStore != nil {
		a.routeUsers()
	}
	if opt.Dashboard != nil {
		a.mux.Handle("/dashboard", opt.Dashboard)
		a.mux.Handle("/dashboard/", opt.Dashboard)
	}
	a.mux.HandleFunc("GET /v1/debug/runtime", a.admin(a.runtimeStats))
	a.routePprof()
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httputil.WriteError(w, http.StatusNotFound, jobcast.Errorf("E_NOT_FOUND", "no route for %s %s", r.Method, r.URL.Path))
	})
	return a
}

// NotReady makes /readyz fail while everything else keeps serving: the
// first step of a graceful shutdown, so load balancers stop sending traffic.
func (a *API) NotReady() { a.notReady.Store(true) }

// Drain makes producer endpoints answer 503 with Retry-After (and /readyz
// fail), for graceful shutdown.
func (a *API) Drain() {
	a.notReady.Store(true)
	a.draining.Store(true)
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			a.opt.Log.Error("panic in handler", "path", r.URL.Path, "panic", fmt.Sprint(v))
			httputil.WriteError(w, http.StatusInternalServerError, errors.New("panic"))
		}
	}()
	if !strings.HasPrefix(r.URL.Path, "/ws/") && !strings.HasPrefix(r.URL.Path, "/healthz") {
		if !a.reqRate.Allow(a.trust.ClientIP(r), a.opt.Clock.Now()) {
			w.Header().Set("Retry-After", "1")
			httputil.WriteError(w, 0, jobcast.Errorf(protocol.ErrRateLimited, "too many requests from this address"))
			return
		}
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	a.mux.ServeHTTP(w, r)
	// Only the path is logged: tokens may travel in the query string.
	a.opt.Log.Debug("request", "method", r.Method, "path", r.URL.Path, "dur", time.Since(start))
}

func bearer(r *http.Request) string {
	a := r.Header.Get("Authorization")
	if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

// producer guards a producer endpoint with an API key.
func (a *API) producer(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.draining.Load() {
			w.Header().Set("Retry-After", "2")
			httputil.WriteError(w, 0, jobcast.Errorf(protocol.ErrUnavailable, "server is shutting down; retry on another node or shortly"))
			return
		}
		if !a.opt.APIKeys.Valid(bearer(r)) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="jobcast"`)
			httputil.WriteError(w, http.StatusUnauthorized, jobcast.Errorf(protocol.ErrUnauthorized, "missing or unknown API key (Authorization: Bearer <key>)"))
			return
		}
		next(w, r)
	}
}

// readBody reads a request body within the configured limit.
func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.opt.Config.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, jobcast.Errorf(protocol.ErrTooLarge, "request body exceeds %d bytes", mbe.Limit)
		}
		return nil, jobcast.Errorf(protocol.ErrBadRequest, "could not read request body")
	}
	return body, nil
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	httputil.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	if a.notReady.Load() {
		httputil.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	}
	if a.opt.Ready != nil {
		if err := a.opt.Ready(); err != nil {
			a.opt.Log.Warn("not ready", "err", err)
			httputil.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
			return
		}
	}
	httputil.WriteJSON(w, http.StatusOK, map[string]any{"status": "ready", "connections": a.opt.Hub.ConnCount()})
}

// TokenResponse is the body of job creation and token refresh.
type TokenResponse struct {
	JobID        string    `json:"jobId"`
	Token        string    `json:"token"`
	ExpiresAt    time.Time `json:"expiresAt"`
	WebsocketURL string    `json:"websocketUrl"`
	// Durable, on creation only, is false when the job is held in memory
	// because the job store refuses writes (durable.go).
	Durable *bool `json:"durable,omitempty"`
}

func (a *API) tokenResponse(r *http.Request, jobID string) (*TokenResponse, error) {
	tok, exp, err := a.opt.Tokens.Issue(jobID)
	if err != nil {
		return nil, err
	}
	return &TokenResponse{JobID: jobID, Token: tok, ExpiresAt: exp.UTC(), WebsocketURL: a.websocketURL(r, jobID)}, nil
}

// websocketURL is where clients connect for jobID: the configured public URL,
// or the request's own host.
func (a *API) websocketURL(r *http.Request, jobID string) string {
	base := strings.TrimRight(a.opt.Config.PublicURL, "/")
	if base == "" {
		base = a.trust.Scheme(r) + "://" + r.Host
	}
	base = strings.Replace(strings.Replace(base, "https://", "wss://", 1), "http://", "ws://", 1)
	return base + "/ws/progress?jobId=" + jobID
}

func (a *API) createJob(w http.ResponseWriter, r *http.Request) {
	body, err := a.readBody(w, r)
	if err != nil {
		httputil.WriteError(w, 0, err)
		return
	}
	if err := protocol.CheckJSONDepth(body, protocol.MaxJSONDepth); err != nil {
		httputil.WriteError(w, 0, jobcast.Errorf(protocol.ErrBadRequest, "%s", err.Error()))
		return
	}
	var req jobs.CreateRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		httputil.WriteError(w, 0, jobcast.Errorf(protocol.ErrBadRequest, "malformed job: %s", strings.TrimPrefix(err.Error(), "json: ")))
		return
	}
	if !a.allowEvents(w, r, 1) {
		return
	}
	job, err := a.opt.Jobs.Create(r.Context(), req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	resp, err := a.tokenResponse(r, job.JobID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	durable := a.durable(w, job)
	resp.Durable = &durable
	w.Header().Set("Location", "/v1/jobs/"+job.JobID)
	httputil.WriteJSON(w, http.StatusCreated, resp)
}

func (a *API) getJob(w http.ResponseWriter, r *http.Request) {
	job, err := a.opt.Jobs.Get(r.Context(), r.PathValue("jobId"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httputil.WriteJSON(w, http.StatusOK, &job.JobState)
}

// AppendResponse is the body of an accepted event post.
type AppendResponse struct {
	Accepted int    `json:"accepted"`
	Seq      int64  `json:"seq"`
	Status   string `json:"status"`
	// Durable is false when the events are delivered but held in memory
	// because the job store refuses writes (durable.go).
	Durable bool `json:"durable"`
}

func (a *API) appendEvents(w http.ResponseWriter, r *http.Request) {
	body, err := a.readBody(w, r)
	if err != nil {
		httputil.WriteError(w, 0, err)
		return
	}
	events, err := protocol.ParseProducerEvents(body)
	if err != nil {
		var ve *protocol.ValidationError
		if errors.As(err, &ve) {
			err = jobcast.Errorf(protocol.ErrBadRequest, "%s", ve.Msg)
		}
		httputil.WriteError(w, 0, err)
		return
	}
	if !a.allowEvents(w, r, len(events)) {
		return
	}
	job, _, err := a.opt.Jobs.Append(r.Context(), r.PathValue("jobId"), events)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httputil.WriteJSON(w, http.StatusAccepted, AppendResponse{Accepted: len(events), Seq: job.Seq, Status: job.Status, Durable: a.durable(w, job)})
}

func (a *API) newToken(w http.ResponseWriter, r *http.Request) {
	job, err := a.opt.Jobs.Get(r.Context(), r.PathValue("jobId"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	resp, err := a.tokenResponse(r, job.JobID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httputil.WriteJSON(w, http.StatusOK, resp)
}

func (a *API) revokeTokens(w http.ResponseWriter, r *http.Request) {
	job, err := a.opt.Jobs.RevokeTokens(r.Context(), r.PathValue("jobId"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httputil.WriteJSON(w, http.StatusOK, map[string]any{"jobId": job.JobID, "tokensNotBefore": job.TokensNotBefore})
}

func (a *API) connections(w http.ResponseWriter, r *http.Request) {
	conns := a.opt.Hub.Connections(r.URL.Query().Get("jobId"))
	httputil.WriteJSON(w, http.StatusOK, map[string]any{"connections": conns, "count": len(conns)})
}

func (a *API) errorCatalog(w http.ResponseWriter, r *http.Request) {
	httputil.WriteJSON(w, http.StatusOK, map[string]any{"errors": a.catalog()})
}

func (a *API) catalog() map[string]jobcast.CatalogEntry {
	return jobcast.NewCatalog(a.opt.Config.Errors).Entries()
}

// fail answers err; internal errors are logged (their text never reaches
// the caller), and so are unavailable ones, which carry the cause (a full
// disk) for the operator and get a Retry-After for the producer.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch jobcast.ErrorCode(err) {
	case protocol.ErrInternal:
		a.opt.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	case protocol.ErrUnavailable:
		a.opt.Log.Error("request failed: unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "1")
		}
	}
	httputil.WriteError(w, 0, err)
}
