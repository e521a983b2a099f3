package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/httputil"
	"github.com/jobcast/jobcast/protocol"
)

// streamWriteTimeout bounds one write to a stream, so that a stalled
// browser cannot hold a goroutine forever.
const streamWriteTimeout = 10 * time.Second

// stream answers GET /dashboard/api/stream: Server-Sent Events carrying a
// fresh overview (event "overview", the same JSON as /api/overview) at once
// and then every StreamInterval, and this node's live figures (event
// "live", a LiveUpdate) after each overview and on every tick between.
//
// An overview that took d to compute is followed by the next one no sooner
// than 2d later: the page of a heavy range refreshes less often instead of
// keeping the telemetry store busy, and says when its figures are from.
// A failed computation sends event "problem" with a message and the stream
// goes on; a session that ended (logout, expiry) gets event "auth" and the
// stream closes.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request) {
	req, err := ParseRequest(r.URL.Query())
	if err != nil {
		httputil.WriteError(w, 0, err)
		return
	}
	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	write := func(event string, v any) bool {
		data, err := json.Marshal(v)
		if err != nil {
			h.opt.Log.Error("dashboard stream: encode", "err", err)
			return false
		}
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// The browser reconnects after this long when the stream breaks.
	_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", h.opt.StreamInterval.Milliseconds()); err != nil {
		return
	}
	var next time.Time // when the next overview is due
	send := func() bool {
		if !h.authorized(r) {
			write("auth", map[string]string{"message": "the session ended; log in again"})
			return false
		}
		// (Half an interval early counts as due: ticks jitter.)
		if now := time.Now(); now.Add(h.opt.StreamInterval / 2).Before(next) {
			return write("live", h.live(next.Sub(now)))
		}
		start := time.Now()
		ov, err := h.build(r.Context(), req)
		next = time.Now().Add(max(h.opt.StreamInterval, 2*time.Since(start)) - time.Since(start))
		if err != nil {
			if r.Context().Err() != nil {
				return false
			}
			msg := "could not compute the figures"
			if code := jobcast.ErrorCode(err); code != protocol.ErrInternal {
				msg = jobcast.ErrorMessage(err)
			} else {
				h.opt.Log.Error("dashboard stream", "err", err)
			}
			if !write("problem", map[string]string{"message": msg}) {
				return false
			}
		} else if !write("overview", ov) {
			return false
		}
		return write("live", h.live(time.Until(next)))
	}
	if !send() {
		return
	}
	tick := time.NewTicker(h.opt.StreamInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if !send() {
				return
			}
		case <-r.Context().Done():
			return
		case <-h.done:
			return
		}
	}
}
