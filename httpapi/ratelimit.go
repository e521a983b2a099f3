package httpapi

import (
	"crypto/sha256"
	"math"
	"net/http"
	"strconv"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/httputil"
	"github.com/jobcast/jobcast/internal/ratelimit"
	"github.com/jobcast/jobcast/protocol"
)

// newEventLimiter returns the per-API-key limit on producer events, or nil
// when cfg turns it off (a rate <= 0 after defaults). The burst is twice the
// rate: a producer that batches once a second posts a second's events at
// once and must not be refused for it.
func newEventLimiter(cfg jobcast.Config) *ratelimit.Limiter {
	if cfg.ProducerEventsPerSecPerKey <= 0 {
		return nil
	}
	return ratelimit.New(cfg.ProducerEventsPerSecPerKey, 2*cfg.ProducerEventsPerSecPerKey)
}

// allowEvents takes n events from the bucket of the request's API key (the
// producer guard has checked it) and answers the request itself when they
// are refused: 429 E_RATE_LIMITED with Retry-After, the seconds until the
// bucket holds n again, or 413 E_TOO_LARGE for a batch above the burst,
// which no wait would let through. Nothing of a refused batch is applied.
//
// Buckets are keyed by the key's SHA-256, so the limiter never holds key
// text; only valid keys reach it, and full (idle) buckets are swept, so its
// memory is bounded by the configured keys.
func (a *API) allowEvents(w http.ResponseWriter, r *http.Request, n int) bool {
	if a.evRate == nil {
		return true
	}
	id := sha256.Sum256([]byte(bearer(r)))
	ok, wait := a.evRate.AllowN(string(id[:]), float64(n), a.opt.Clock.Now())
	if ok {
		return true
	}
	if wait <= 0 {
		httputil.WriteError(w, 0, jobcast.Errorf(protocol.ErrTooLarge,
			"a batch of %d events is more than one API key may post at once (%.0f); split it into smaller batches", n, a.evRate.Burst()))
		return false
	}
	secs := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	httputil.WriteError(w, 0, jobcast.Errorf(protocol.ErrRateLimited,
		"this API key is over its limit of %.0f events per second on this node; none of the %d events were applied, retry in %d s",
		a.evRate.Burst()/2, n, secs))
	return false
}
