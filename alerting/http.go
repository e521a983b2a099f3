package alerting

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/internal/httputil"
	"github.com/jobcast/jobcast/protocol"
)

// maxBody bounds a request body of the alerts API.
const maxBody = 1 << 20

// Handler serves the alerts API under /v1/alerts. The caller mounts it
// behind the admin token:
//
//	GET    /v1/alerts                     pending and firing alerts
//	GET    /v1/alerts/rules               the rules in force, their health, the receivers
//	PUT    /v1/alerts/rules               replace the API rules (YAML or JSON {"rules": [...]})
//	GET    /v1/alerts/history?limit=N     the notification history, newest first
//	GET    /v1/alerts/silences            silences
//	POST   /v1/alerts/silences            add one: {"matchers": ["a=b"] or [{name,value,...}], "endsAt" | "duration", "comment", "createdBy"}
//	DELETE /v1/alerts/silences/{id}       expire one
//	POST   /v1/alerts/test?receiver=NAME  send a test notification
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/alerts", s.handleAlerts)
	mux.HandleFunc("GET /v1/alerts/rules", s.handleRules)
	mux.HandleFunc("PUT /v1/alerts/rules", s.handleSetRules)
	mux.HandleFunc("POST /v1/alerts/rules", s.handleSetRules)
	mux.HandleFunc("GET /v1/alerts/history", s.handleHistory)
	mux.HandleFunc("GET /v1/alerts/silences", s.handleSilences)
	mux.HandleFunc("POST /v1/alerts/silences", s.handleAddSilence)
	mux.HandleFunc("DELETE /v1/alerts/silences/{id}", s.handleExpireSilence)
	mux.HandleFunc("POST /v1/alerts/test", s.handleTest)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httputil.WriteError(w, http.StatusNotFound, jobcast.Errorf("E_NOT_FOUND", "no route for %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func (s *Service) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	if jobcast.ErrorCode(err) == protocol.ErrInternal {
		s.log.Error("alerting: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	httputil.WriteError(w, status, err)
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, jobcast.Errorf(protocol.ErrTooLarge, "request body exceeds %d bytes", mbe.Limit)
		}
		return nil, jobcast.Errorf(protocol.ErrBadRequest, "could not read request body")
	}
	return body, nil
}

func (s *Service) handleAlerts(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	at := s.lastEval
	s.mu.Unlock()
	httputil.WriteJSON(w, http.StatusOK, struct {
		Alerts      []AlertStatus `json:"alerts"`
		EvaluatedAt time.Time     `json:"evaluatedAt,omitzero"`
	}{s.Alerts(), at})
}

func (s *Service) handleRules(w http.ResponseWriter, r *http.Request) {
	httputil.WriteJSON(w, http.StatusOK, s.Rules())
}

func (s *Service) handleSetRules(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	n, err := s.SetRules(r.Context(), body)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	httputil.WriteJSON(w, http.StatusOK, map[string]any{"rulesInForce": n, "rules": s.Rules().Rules})
}

func limitParam(r *http.Request, def, maxN int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxN {
		return 0, jobcast.Errorf(protocol.ErrBadRequest, "limit must be a whole number from 1 to %d", maxN)
	}
	return n, nil
}

func (s *Service) handleHistory(w http.ResponseWriter, r *http.Request) {
	n, err := limitParam(r, 100, 1000)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	h, err := s.History(r.Context(), n)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	httputil.WriteJSON(w, http.StatusOK, map[string]any{"history": h})
}

func (s *Service) handleSilences(w http.ResponseWriter, r *http.Request) {
	now := s.clock.Now()
	type view struct {
		jobcast.Silence
		State string `json:"state"`
	}
	out := []view{}
	for _, sil := range s.Silences() {
		st := "active"
		switch {
		case !now.Before(sil.EndsAt):
			st = "expired"
		case now.Before(sil.StartsAt):
			st = "pending"
		}
		out = append(out, view{sil, st})
	}
	httputil.WriteJSON(w, http.StatusOK, map[string]any{"silences": out})
}

// SilenceRequest is the body of POST /v1/alerts/silences. Matchers are
// strings ("severity=critical", "pipeline=~csv.*") or objects.
type SilenceRequest struct {
	Matchers  []json.RawMessage `json:"matchers"`
	StartsAt  time.Time         `json:"startsAt,omitzero"`
	EndsAt    time.Time         `json:"endsAt,omitzero"`
	Duration  string            `json:"duration,omitempty"`
	CreatedBy string            `json:"createdBy,omitempty"`
	Comment   string            `json:"comment,omitempty"`
}

// createdBy names who made a silence: a signed-in user's own name, which the
// body cannot override; with the shared admin token (or no auth check in
// front, as in tests) what the body says.
func createdBy(r *http.Request, claimed string) string {
	if p, ok := auth.PrincipalFrom(r.Context()); ok && p.Name != jobcast.AdminName {
		return p.Name
	}
	return claimed
}

func (s *Service) handleAddSilence(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	var req SilenceRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.fail(w, r, 0, jobcast.Errorf(protocol.ErrBadRequest, "malformed silence: %s", strings.TrimPrefix(err.Error(), "json: ")))
		return
	}
	sil := jobcast.Silence{StartsAt: req.StartsAt, EndsAt: req.EndsAt, CreatedBy: createdBy(r, req.CreatedBy), Comment: req.Comment}
	for _, raw := range req.Matchers {
		var str string
		if json.Unmarshal(raw, &str) == nil {
			m, err := ParseMatcher(str)
			if err != nil {
				s.fail(w, r, 0, jobcast.Errorf(protocol.ErrBadRequest, "%s", err))
				return
			}
			sil.Matchers = append(sil.Matchers, m)
			continue
		}
		var m jobcast.Matcher
		if err := json.Unmarshal(raw, &m); err != nil {
			s.fail(w, r, 0, jobcast.Errorf(protocol.ErrBadRequest, "a matcher is a string such as \"severity=critical\" or {\"name\",\"value\",\"isEqual\",\"isRegex\"}"))
			return
		}
		sil.Matchers = append(sil.Matchers, m)
	}
	if req.Duration != "" {
		if !req.EndsAt.IsZero() {
			s.fail(w, r, 0, jobcast.Errorf(protocol.ErrBadRequest, "set endsAt or duration, not both"))
			return
		}
		d, err := parseDuration(req.Duration)
		if err != nil || d <= 0 {
			s.fail(w, r, 0, jobcast.Errorf(protocol.ErrBadRequest, "duration %q must be positive, such as 2h", req.Duration))
			return
		}
		start := sil.StartsAt
		if start.IsZero() {
			start = s.clock.Now()
		}
		sil.EndsAt = start.Add(d.D())
	}
	if sil.EndsAt.IsZero() {
		s.fail(w, r, 0, jobcast.Errorf(protocol.ErrBadRequest, "a silence needs endsAt or duration"))
		return
	}
	out, err := s.AddSilence(r.Context(), sil)
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	httputil.WriteJSON(w, http.StatusOK, out) // 200, as Alertmanager answers a new silence
}

func (s *Service) handleExpireSilence(w http.ResponseWriter, r *http.Request) {
	sil, err := s.ExpireSilence(r.Context(), r.PathValue("id"))
	if errors.Is(err, ErrSilenceNotFound) {
		s.fail(w, r, http.StatusNotFound, err)
		return
	}
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	httputil.WriteJSON(w, http.StatusOK, sil)
}

func (s *Service) handleTest(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("receiver")
	if name == "" {
		s.fail(w, r, 0, jobcast.Errorf(protocol.ErrBadRequest, "name the receiver: POST /v1/alerts/test?receiver=NAME"))
		return
	}
	err := s.Test(r.Context(), name)
	switch jobcast.ErrorCode(err) {
	case "E_NOT_FOUND":
		s.fail(w, r, http.StatusNotFound, err)
		return
	case "E_RECEIVER_FAILED":
		s.fail(w, r, http.StatusBadGateway, err)
		return
	}
	if err != nil {
		s.fail(w, r, 0, err)
		return
	}
	httputil.WriteJSON(w, http.StatusOK, map[string]any{"receiver": name, "outcome": jobcast.NotifySent})
}
