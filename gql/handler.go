package gql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	graphql "github.com/graph-gophers/graphql-go"
	gqlerrors "github.com/graph-gophers/graphql-go/errors"
	gqllog "github.com/graph-gophers/graphql-go/log"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/metrics"
)

// Limits of one request.
const (
	maxBodyBytes   = 1 << 20
	maxQueryLength = 32 << 10
	maxDepth       = 10
	// maxParallelism bounds the resolvers of one request running at once:
	// each may run a statement on the telemetry store.
	maxParallelism = 4
)

// Option configures NewHandler.
type Option func(*resolver)

// WithLog sets the logger for internal errors and panics (default: discard).
func WithLog(log *slog.Logger) Option {
	return func(r *resolver) {
		if log != nil {
			r.log = log
		}
	}
}

// WithClock sets the clock that "last 1h" windows end at (default: the
// system clock).
func WithClock(c jobcast.Clock) Option {
	return func(r *resolver) {
		if c != nil {
			r.clock = c
		}
	}
}

// handler serves POST /graphql.
type handler struct {
	schema *graphql.Schema
	log    *slog.Logger
}

// NewHandler returns the GraphQL endpoint over lib, with live figures from
// live (nil makes the live query an error). It takes a JSON body
// {"query", "operationName", "variables"} and answers {"data", "errors"}.
// Authentication is the caller's: mount it behind the admin token.
func NewHandler(lib *metrics.Library, live LiveSource, opts ...Option) (http.Handler, error) {
	if lib == nil {
		return nil, errors.New("gql: no metrics library")
	}
	r := &resolver{lib: lib, live: live, clock: jobcast.SystemClock{}, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(r)
	}
	text, err := schema()
	if err != nil {
		return nil, err
	}
	s, err := graphql.ParseSchema(text, r,
		graphql.UseStringDescriptions(),
		graphql.UseFieldResolvers(),
		graphql.MaxDepth(maxDepth),
		graphql.MaxQueryLength(maxQueryLength),
		graphql.MaxParallelism(maxParallelism),
		graphql.Logger(gqllog.LoggerFunc(func(ctx context.Context, v any) {
			r.log.Error("panic in graphql resolver", "panic", fmt.Sprint(v))
		})),
		graphql.PanicHandler(panicHandler{}),
	)
	if err != nil {
		return nil, fmt.Errorf("gql: schema: %w", err)
	}
	return &handler{schema: s, log: r.log}, nil
}

// panicHandler answers a resolver's panic without its text.
type panicHandler struct{}

func (panicHandler) MakePanicError(context.Context, any) *gqlerrors.QueryError {
	return &gqlerrors.QueryError{Message: "internal error", Extensions: map[string]any{"code": "E_INTERNAL"}}
}

// request is the body of a GraphQL POST.
type request struct {
	Query         string         `json:"query"`
	OperationName string         `json:"operationName"`
	Variables     map[string]any `json:"variables"`
}

// ServeHTTP implements http.Handler.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeErrors(w, http.StatusMethodNotAllowed, "use POST with a JSON body {\"query\": \"...\"}")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeErrors(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", mbe.Limit))
			return
		}
		writeErrors(w, http.StatusBadRequest, "could not read the request body")
		return
	}
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		writeErrors(w, http.StatusBadRequest, "malformed request: send JSON {\"query\": \"...\", \"variables\": {...}}")
		return
	}
	if req.Query == "" {
		writeErrors(w, http.StatusBadRequest, "no query: send JSON {\"query\": \"...\", \"variables\": {...}}")
		return
	}
	resp := h.schema.Exec(r.Context(), req.Query, req.OperationName, req.Variables)
	out, err := json.Marshal(resp)
	if err != nil {
		h.log.Error("encode graphql response", "err", err)
		writeErrors(w, http.StatusInternalServerError, "internal error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(out)
}

// writeErrors answers a request that never reached the schema, in GraphQL's
// error shape.
func writeErrors(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"message": msg}}})
}
