package experiment

import (
	"io"
	"net/http"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/httputil"
	"github.com/jobcast/jobcast/protocol"
)

// maxBody bounds a request body: an experiment is a few hundred bytes.
const maxBody = 64 << 10

// Handler serves /v1/experiments (SPEC §7). The caller mounts it behind
// the admin token.
//
//	GET  /v1/experiments                list, with the parameter registry
//	POST /v1/experiments                create
//	GET  /v1/experiments/{id}           one experiment
//	PUT  /v1/experiments/{id}           update (any subset of the fields)
//	POST /v1/experiments/{id}/start     status running
//	POST /v1/experiments/{id}/stop      status stopped
//	GET  /v1/experiments/{id}/results   analysis
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/experiments", s.handleList)
	mux.HandleFunc("POST /v1/experiments", s.handleCreate)
	mux.HandleFunc("GET /v1/experiments/{id}", s.handleGet)
	mux.HandleFunc("PUT /v1/experiments/{id}", s.handleUpdate)
	mux.HandleFunc("POST /v1/experiments/{id}/start", s.handleStatus(jobcast.ExperimentRunning))
	mux.HandleFunc("POST /v1/experiments/{id}/stop", s.handleStatus(jobcast.ExperimentStopped))
	mux.HandleFunc("GET /v1/experiments/{id}/results", s.handleResults)
	mux.HandleFunc("/v1/experiments/", func(w http.ResponseWriter, r *http.Request) {
		httputil.WriteError(w, http.StatusNotFound, jobcast.Errorf("E_NOT_FOUND", "no route for %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// writeError answers err; the experiment codes map here, the rest as
// everywhere (jobcast.HTTPStatus).
func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := 0
	switch jobcast.ErrorCode(err) {
	case jobcast.CodeExperimentNotFound:
		status = http.StatusNotFound
	case jobcast.CodeExperimentExists:
		status = http.StatusConflict
	case protocol.ErrInternal:
		s.opt.Log.Error("experiments API", "path", r.URL.Path, "err", err)
	}
	httputil.WriteError(w, status, err)
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	list, err := s.List(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if list == nil {
		list = []jobcast.Experiment{}
	}
	httputil.WriteJSON(w, http.StatusOK, map[string]any{"experiments": list, "parameters": jobcast.Parameters})
}

func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) {
	e, err := readJSON(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out, err := s.Create(r.Context(), e)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httputil.WriteJSON(w, http.StatusCreated, out)
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	e, err := s.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httputil.WriteJSON(w, http.StatusOK, e)
}

func (s *Service) handleUpdate(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		s.writeError(w, r, badRequest("read body: %v", err))
		return
	}
	e, err := s.Update(r.Context(), r.PathValue("id"), body)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httputil.WriteJSON(w, http.StatusOK, e)
}

func (s *Service) handleStatus(status string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		e, err := s.Update(r.Context(), r.PathValue("id"), []byte(`{"status":"`+status+`"}`))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		httputil.WriteJSON(w, http.StatusOK, e)
	}
}

func (s *Service) handleResults(w http.ResponseWriter, r *http.Request) {
	res, err := s.Results(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httputil.WriteJSON(w, http.StatusOK, res)
}
