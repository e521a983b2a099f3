package nats

import (
	"context"
	"errors"
	"fmt"

	natsgo "github.com/nats-io/nats.go"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

// errUnavailable is what callers hear while NATS cannot be reached: a
// condition producers outlive by retrying, so E_UNAVAILABLE (503 with
// Retry-After), as a full disk is in embedded mode. The NATS error stays in
// the chain for the server's log.
var errUnavailable = jobcast.Errorf(protocol.ErrUnavailable, "the job store cannot be reached right now; retry shortly")

// errDisconnected cancels the requests of a connection that lost its
// server.
var errDisconnected = errors.New("lost the connection to NATS")

// whileConnected returns ctx, cancelled with errDisconnected as soon as nc
// loses its server, and the function that releases it; it fails at once
// when nc is not connected now. Without it a request made while nats.go
// reconnects waits in the reconnect buffer, and one in flight when the
// server goes away waits for its reply, both until their timeout (10 s):
// a producer would hang instead of hearing 503.
func whileConnected(ctx context.Context, nc *natsgo.Conn) (context.Context, func(), error) {
	if !nc.IsConnected() {
		return nil, nil, fmt.Errorf("%w: %w", errUnavailable, natsgo.ErrDisconnected)
	}
	ch := nc.StatusChanged(natsgo.RECONNECTING, natsgo.DISCONNECTED, natsgo.CLOSED)
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case _, ok := <-ch:
			if ok {
				cancel(errDisconnected)
			}
		case <-ctx.Done():
		}
	}()
	if !nc.IsConnected() { // lost between the check and the listener
		cancel(errDisconnected)
	}
	return ctx, func() {
		nc.RemoveStatusListener(ch)
		cancel(nil)
	}, nil
}

// outageError marks err with errUnavailable when NATS was the cause: the
// connection dropped (ctx's cause), the server had no JetStream to answer
// (no responders, as right after a restart), or it did not answer in time.
// A caller's own cancellation (a client that went away) stays as it is.
func outageError(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, errUnavailable) {
		return err
	}
	switch {
	case errors.Is(context.Cause(ctx), errDisconnected):
		return fmt.Errorf("%w: %w: %w", errUnavailable, errDisconnected, err)
	case errors.Is(err, natsgo.ErrNoResponders), errors.Is(err, natsgo.ErrTimeout),
		errors.Is(err, natsgo.ErrDisconnected), errors.Is(err, natsgo.ErrConnectionClosed),
		errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", errUnavailable, err)
	}
	return err
}
