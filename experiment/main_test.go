package experiment_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/experiment"
	"github.com/jobcast/jobcast/httpapi"
	"github.com/jobcast/jobcast/hub"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/internal/jobcasttest"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const apiKey = "experiment-test-api-key-0123"

func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newService returns a Service on a fresh SQLite database.
func newService(t testing.TB, telemetry jobcast.TelemetryStore) (*experiment.Service, *sqlite.ExperimentStore) {
	t.Helper()
	st, err := sqlite.OpenExperimentStore(context.Background(), filepath.Join(t.TempDir(), "jobcast.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := experiment.New(context.Background(), experiment.Options{Store: st, Telemetry: telemetry})
	if err != nil {
		t.Fatal(err)
	}
	return svc, st
}

// server is a jobcast node (producer API, hub, jobs) whose hub takes its
// parameters from an experiment service.
type server struct {
	URL, WSURL string
	Producer   *client.Producer
	Config     jobcast.Config
	Events     *jobcasttest.Events
}

func startServer(t *testing.T, params jobcast.ParamAssigner, cfg jobcast.Config) *server {
	t.Helper()
	cfg.APIKeys = []string{apiKey}
	cfg.NodeID = "exp"
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	clock := jobcast.SystemClock{}
	secret := []byte("experiment-test-jwt-secret-0123456789")
	ring, err := auth.NewKeyring(auth.Key{ID: auth.SecretKeyID(secret), Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	tokens := auth.NewTokens(ring, cfg.TokenTTL, clock)
	keys, err := auth.NewAPIKeys(cfg.APIKeys, nil)
	if err != nil {
		t.Fatal(err)
	}
	events := &jobcasttest.Events{}
	store, broker := inmem.NewJobStore(), inmem.NewBroker()
	catalog := jobcast.NewCatalog(nil)
	svc := jobs.New(store, broker, catalog, clock, log)
	h := hub.New(hub.Options{Config: cfg, Store: store, Broker: broker, Tokens: tokens, Catalog: catalog, Clock: clock,
		Log: log, NodeID: cfg.NodeID, Recorder: events, Params: params})
	svc.SetTelemetry(events, h.ThrottledCount)
	api := httpapi.New(httpapi.Options{Config: cfg, Jobs: svc, Hub: h, Tokens: tokens, APIKeys: keys, Clock: clock, Log: log})
	ts := httptest.NewServer(api)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		api.Drain()
		_ = h.Shutdown(ctx)
		ts.CloseClientConnections()
		ts.Close()
		_ = store.Close()
	})
	return &server{URL: ts.URL, WSURL: "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws/progress",
		Producer: client.NewProducer(ts.URL, apiKey), Config: cfg, Events: events}
}

// apiCall sends a JSON request to handler h and decodes the answer into out.
func apiCall(t *testing.T, h http.Handler, method, path, body string, out any) int {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = bytes.NewBufferString(body)
	}
	req := httptest.NewRequest(method, path, r)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, w.Body.String(), err)
		}
	}
	return w.Code
}

// create makes a running experiment through the API.
func create(t *testing.T, svc *experiment.Service, body string) jobcast.Experiment {
	t.Helper()
	var e jobcast.Experiment
	var raw json.RawMessage
	if code := apiCall(t, svc.Handler(), http.MethodPost, "/v1/experiments", body, &raw); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, raw)
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	return e
}
