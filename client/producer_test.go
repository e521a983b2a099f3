package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/protocol"
)

func TestProducer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	ctx := ctxT(t)
	p := e.srv.Producer
	tk, err := p.CreateJob(ctx, client.CreateJobRequest{JobID: "import-42", Pipeline: "csv_import", TotalCount: 10,
		Metadata: json.RawMessage(`{"file":"a.csv"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if tk.JobID != "import-42" || tk.Token == "" || !tk.ExpiresAt.After(e.clock.Now()) ||
		!strings.HasPrefix(tk.WebsocketURL, "ws://") || !strings.Contains(tk.WebsocketURL, "jobId=import-42") {
		t.Errorf("ticket = %+v", tk)
	}
	r, err := p.SendEvent(ctx, tk.JobID, client.NewEvent(protocol.EventStarted, map[string]any{"totalCount": 12}))
	if err != nil || r.Accepted != 1 || r.Seq != 1 || r.Status != protocol.StatusRunning || !r.Durable {
		t.Errorf("SendEvent = %+v, %v", r, err)
	}
	r, err = p.SendEvents(ctx, tk.JobID, []protocol.ProducerEvent{progress(5), errorEv(protocol.ErrGeminiTimeout), progress(6)})
	if err != nil || r.Accepted != 3 || r.Seq != 4 {
		t.Errorf("SendEvents = %+v, %v", r, err)
	}
	st, err := p.GetJob(ctx, tk.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Seq != 4 || st.ProcessedCount != 6 || st.TotalCount != 12 || st.LastError == nil || st.LastError.Code != protocol.ErrGeminiTimeout {
		t.Errorf("state = %+v", st)
	}
	nt, err := p.NewToken(ctx, tk.JobID)
	if err != nil || nt.Token == "" || nt.JobID != tk.JobID {
		t.Errorf("NewToken = %+v, %v", nt, err)
	}
	if err := p.RevokeTokens(ctx, tk.JobID); err != nil {
		t.Errorf("RevokeTokens: %v", err)
	}
}

func TestProducerErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	ctx := ctxT(t)
	p := e.srv.Producer
	done, err := p.CreateJob(ctx, client.CreateJobRequest{JobID: "done-1", Pipeline: "csv_import"})
	if err != nil {
		t.Fatal(err)
	}
	e.send(t, done.JobID, completed())
	badKey := client.NewProducer(e.srv.URL, "wrong-key-0123456789")

	tests := []struct {
		name       string
		call       func() error
		wantStatus int
		wantCode   string
	}{
		{"unknown API key", func() error { _, err := badKey.GetJob(ctx, done.JobID); return err }, 401, protocol.ErrUnauthorized},
		{"unknown job", func() error { _, err := p.GetJob(ctx, "no-such-job"); return err }, 404, protocol.ErrJobNotFound},
		{"event for unknown job", func() error { _, err := p.SendEvent(ctx, "no-such-job", progress(1)); return err }, 404, protocol.ErrJobNotFound},
		{"token for unknown job", func() error { _, err := p.NewToken(ctx, "no-such-job"); return err }, 404, protocol.ErrJobNotFound},
		{"revoke for unknown job", func() error { return p.RevokeTokens(ctx, "no-such-job") }, 404, protocol.ErrJobNotFound},
		{"event after terminal", func() error { _, err := p.SendEvent(ctx, done.JobID, progress(1)); return err }, 409, protocol.ErrJobFinished},
		{"duplicate job id", func() error {
			_, err := p.CreateJob(ctx, client.CreateJobRequest{JobID: done.JobID, Pipeline: "csv_import"})
			return err
		}, 409, protocol.ErrJobExists},
		{"progress without processedCount", func() error {
			_, err := p.SendEvent(ctx, done.JobID, client.NewEvent(protocol.EventProgress, map[string]any{"message": "x"}))
			return err
		}, 400, protocol.ErrBadRequest},
		{"unknown event type", func() error { _, err := p.SendEvent(ctx, done.JobID, client.NewEvent("paused", nil)); return err }, 400, protocol.ErrBadRequest},
		{"bad pipeline", func() error {
			_, err := p.CreateJob(ctx, client.CreateJobRequest{Pipeline: "no spaces please"})
			return err
		}, 400, protocol.ErrBadRequest},
		{"empty batch", func() error { _, err := p.SendEvents(ctx, done.JobID, nil); return err }, 400, protocol.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.call()
			var ae *client.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v (%T), want *client.APIError", err, err)
			}
			if ae.Status != tt.wantStatus || ae.Code != tt.wantCode || ae.Message == "" {
				t.Errorf("APIError = %+v, want %d %s", ae, tt.wantStatus, tt.wantCode)
			}
			if !strings.Contains(ae.Error(), tt.wantCode) {
				t.Errorf("Error() = %q", ae.Error())
			}
		})
	}
}

// Retry-After and non-JSON error bodies still make a useful APIError.
func TestProducerAPIErrorShapes(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/jobs/busy", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":{"code":"E_UNAVAILABLE","message":"draining"}}`))
	})
	mux.HandleFunc("GET /v1/jobs/proxy", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	})
	mux.HandleFunc("GET /v1/jobs/garbled", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"jobId":`))
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	p := client.NewProducer(s.URL+"/", "key-0123456789abcdef")
	ctx := ctxT(t)

	_, err := p.GetJob(ctx, "busy")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 503 || ae.Code != protocol.ErrUnavailable || ae.RetryAfter != 7*time.Second {
		t.Errorf("busy: %#v", err)
	}
	_, err = p.GetJob(ctx, "proxy")
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Code != "E_HTTP" || ae.Message == "" {
		t.Errorf("proxy: %#v", err)
	}
	if _, err = p.GetJob(ctx, "garbled"); err == nil || errors.As(err, &ae) {
		t.Errorf("garbled body: %v, want a decode error", err)
	}
	// A canceled context is not an API error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err = p.GetJob(cctx, "busy"); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

// The server drains producers during shutdown with 503 and Retry-After.
func TestProducerDuringDrain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	tk := e.createJob(t)
	e.srv.API.Drain()
	_, err := e.srv.Producer.SendEvent(ctxT(t), tk.JobID, progress(1))
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != protocol.ErrUnavailable || ae.RetryAfter <= 0 {
		t.Errorf("during drain: %#v", err)
	}
}
