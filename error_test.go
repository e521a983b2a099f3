package jobcast_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

func TestHTTPStatus(t *testing.T) {
	t.Parallel()
	tests := map[string]int{
		protocol.ErrBadRequest:       400,
		protocol.ErrProtocol:         400,
		protocol.ErrUnauthorized:     401,
		protocol.ErrTokenExpired:     401,
		protocol.ErrTokenInvalid:     401,
		protocol.ErrJobNotFound:      404,
		protocol.ErrJobExists:        409,
		protocol.ErrJobFinished:      409,
		protocol.ErrTooLarge:         413,
		protocol.ErrRateLimited:      429,
		protocol.ErrTooManyConns:     429,
		protocol.ErrUnavailable:      503,
		protocol.ErrInternal:         500,
		protocol.ErrConnectionLost:   500,
		protocol.ErrGeminiTimeout:    500,
		protocol.ErrEnrichmentFailed: 500,
		"":                           500,
		"E_SOMETHING":                500,
	}
	for code, want := range tests {
		if got := jobcast.HTTPStatus(code); got != want {
			t.Errorf("HTTPStatus(%q) = %d, want %d", code, got, want)
		}
	}
}

func TestErrorCodeAndMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		err         error
		wantCode    string
		wantMessage string
	}{
		{name: "domain error", err: jobcast.Errorf(protocol.ErrBadRequest, "bad %s", "pipeline"), wantCode: "E_BAD_REQUEST", wantMessage: "bad pipeline"},
		{name: "wrapped domain error", err: fmt.Errorf("create job: %w", jobcast.ErrJobExists), wantCode: "E_JOB_EXISTS", wantMessage: "a job with this id already exists"},
		{name: "not found", err: jobcast.ErrJobNotFound, wantCode: "E_JOB_NOT_FOUND", wantMessage: "job not found"},
		{name: "internal error text never leaks", err: errors.New("open /var/lib/jobcast/db: permission denied"), wantCode: "E_INTERNAL", wantMessage: "internal error"},
		{name: "conflict is internal", err: fmt.Errorf("store: %w", jobcast.ErrConflict), wantCode: "E_INTERNAL", wantMessage: "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := jobcast.ErrorCode(tt.err); got != tt.wantCode {
				t.Errorf("ErrorCode = %q, want %q", got, tt.wantCode)
			}
			if got := jobcast.ErrorMessage(tt.err); got != tt.wantMessage {
				t.Errorf("ErrorMessage = %q, want %q", got, tt.wantMessage)
			}
		})
	}
	if got := jobcast.Errorf("E_X", "n=%d", 3).Error(); got != "E_X: n=3" {
		t.Fatalf("Error() = %q, want %q", got, "E_X: n=3")
	}
	if !errors.Is(fmt.Errorf("get: %w", jobcast.ErrJobNotFound), jobcast.ErrJobNotFound) {
		t.Fatal("errors.Is does not see a wrapped ErrJobNotFound")
	}
}
