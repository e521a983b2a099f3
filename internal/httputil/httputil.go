// Package httputil holds the JSON response helpers shared by jobcast's HTTP
// surfaces, so that every error has the same shape.
package httputil

import (
	"encoding/json"
	"net/http"

	"github.com/jobcast/jobcast"
)

// ErrorBody is the JSON shape of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inner object of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteJSON writes v with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// WriteError writes err as an error body with the status its code maps to;
// status overrides the mapping when non-zero. Internal errors get a generic
// message.
func WriteError(w http.ResponseWriter, status int, err error) {
	code := jobcast.ErrorCode(err)
	if status == 0 {
		status = jobcast.HTTPStatus(code)
	}
	WriteJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: jobcast.ErrorMessage(err)}})
}
