package hub

import (
	"fmt"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/protocol"
)

// TestFailReason: each handshake error gets its connect_failed reason; a
// store that is down is "unavailable", not "shutting_down" (which only the
// hub's own shutdown records), so an operator can tell a NATS outage or a
// full disk from a rolling restart.
func TestFailReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{jobcast.Errorf(protocol.ErrUnavailable, "job store unavailable"), jobcast.ReasonUnavailable},
		{fmt.Errorf("get job: %w", jobcast.Errorf(protocol.ErrUnavailable, "nats down")), jobcast.ReasonUnavailable},
		{jobcast.Errorf(protocol.ErrTokenExpired, "x"), jobcast.ReasonTokenExpired},
		{jobcast.Errorf(protocol.ErrTokenInvalid, "x"), jobcast.ReasonTokenInvalid},
		{auth.ErrTokenRevoked, jobcast.ReasonTokenRevoked},
		{jobcast.Errorf(protocol.ErrJobNotFound, "x"), jobcast.ReasonJobNotFound},
		{jobcast.Errorf(protocol.ErrRateLimited, "x"), jobcast.ReasonRateLimited},
		{jobcast.Errorf(protocol.ErrTooManyConns, "x"), jobcast.ReasonTooManyConns},
		{jobcast.Errorf(protocol.ErrBadRequest, "x"), jobcast.ReasonBadRequest},
		{fmt.Errorf("boom"), jobcast.ReasonInternal},
	} {
		if got := failReason(tc.err); got != tc.want {
			t.Errorf("failReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
