package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/internal/httputil"
	"github.com/jobcast/jobcast/protocol"
)

// CreateUserRequest is the body of POST /v1/users.
type CreateUserRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// CreatedUser answers POST /v1/users: the user and its token, which is
// shown this once; the server keeps only its hash.
type CreatedUser struct {
	jobcast.User
	Token string `json:"token"`
}

// routeUsers mounts the users API (admin role only).
func (a *API) routeUsers() {
	a.mux.HandleFunc("GET /v1/users", a.admin(a.listUsers))
	a.mux.HandleFunc("POST /v1/users", a.admin(a.createUser))
	a.mux.HandleFunc("DELETE /v1/users/{name}", a.admin(a.deleteUser))
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) {
	users, err := a.opt.UserStore.ListUsers(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httputil.WriteJSON(w, http.StatusOK, map[string]any{"users": users})
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request) {
	body, err := a.readBody(w, r)
	if err != nil {
		httputil.WriteError(w, 0, err)
		return
	}
	var req CreateUserRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		httputil.WriteError(w, 0, jobcast.Errorf(protocol.ErrBadRequest, `malformed user: %s (want {"name":"…","role":"viewer|admin"})`, strings.TrimPrefix(err.Error(), "json: ")))
		return
	}
	if err := jobcast.ValidateUserName(req.Name); err != nil {
		httputil.WriteError(w, 0, err)
		return
	}
	role, err := jobcast.ParseRole(req.Role)
	if err != nil {
		httputil.WriteError(w, 0, err)
		return
	}
	tok, hash, err := jobcast.NewUserToken()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	u := jobcast.User{Name: req.Name, Role: role, CreatedAt: a.opt.Clock.Now().UTC().Truncate(time.Millisecond), TokenHash: hash}
	if err := a.opt.UserStore.CreateUser(r.Context(), u); err != nil {
		a.userFail(w, r, err)
		return
	}
	by, _ := auth.PrincipalFrom(r.Context())
	// The name and role only: the token is in the answer and nowhere else.
	a.opt.Log.Info("user created", "user", u.Name, "role", string(u.Role), "by", by.Name)
	w.Header().Set("Location", "/v1/users/"+u.Name)
	httputil.WriteJSON(w, http.StatusCreated, CreatedUser{User: u, Token: tok})
}

func (a *API) deleteUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := a.opt.UserStore.DeleteUser(r.Context(), name); err != nil {
		a.userFail(w, r, err)
		return
	}
	a.auth.Forget(name)
	by, _ := auth.PrincipalFrom(r.Context())
	a.opt.Log.Info("user revoked", "user", name, "by", by.Name)
	httputil.WriteJSON(w, http.StatusOK, map[string]any{"name": name, "revoked": true})
}

// userFail answers the user store's domain errors with their status (their
// codes are not protocol codes, so HTTPStatus does not know them).
func (a *API) userFail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, jobcast.ErrUserNotFound):
		httputil.WriteError(w, http.StatusNotFound, err)
	case errors.Is(err, jobcast.ErrUserExists):
		httputil.WriteError(w, http.StatusConflict, err)
	default:
		a.fail(w, r, err)
	}
}
