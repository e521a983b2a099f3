package jobcast

import (
	"errors"
	"fmt"

	"github.com/jobcast/jobcast/protocol"
)

// Error is a domain error: a catalog code and a message that is safe to show
// to the caller. Internal failures are wrapped in plain errors and surface as
// E_INTERNAL with a generic message; their text never reaches users.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or
// E_INTERNAL.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return protocol.ErrInternal
}

// ErrorMessage returns the user-safe message of err: the *Error's message,
// or a generic one for internal errors.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// Sentinel-like constructors for the errors the stores return.
var (
	ErrJobNotFound = &Error{Code: protocol.ErrJobNotFound, Message: "job not found"}
	ErrJobExists   = &Error{Code: protocol.ErrJobExists, Message: "a job with this id already exists"}
	// ErrConflict means an optimistic update lost a race; callers reload and
	// retry. It never reaches users.
	ErrConflict = errors.New("jobcast: concurrent update")
)

// HTTPStatus maps an error code to the HTTP status it is answered with. It is
// the one place that mapping lives; producer codes (failed/error payloads)
// never reach it.
func HTTPStatus(code string) int {
	switch code {
	case protocol.ErrBadRequest, protocol.ErrProtocol:
		return 400
	case protocol.ErrUnauthorized, protocol.ErrTokenExpired, protocol.ErrTokenInvalid:
		return 401
	case protocol.ErrJobNotFound:
		return 404
	case protocol.ErrJobExists, protocol.ErrJobFinished:
		return 409
	case protocol.ErrTooLarge:
		return 413
	case protocol.ErrRateLimited, protocol.ErrTooManyConns:
		return 429
	case protocol.ErrUnavailable:
		return 503
	}
	return 500
}
