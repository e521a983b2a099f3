package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/hub"
	"github.com/jobcast/jobcast/internal/httputil"
	"github.com/jobcast/jobcast/protocol"
)

// maxTimeline is how many of a job's telemetry events the inspector shows:
// the latest ones.
const maxTimeline = 500

// maxJobIDLength bounds the job id the inspector looks up.
const maxJobIDLength = 256

// TimelineEvent is one telemetry event of a job.
type TimelineEvent struct {
	TS         time.Time `json:"ts"`
	Event      string    `json:"event"`
	Node       string    `json:"node,omitempty"`
	ConnID     string    `json:"connId,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	ErrorCode  string    `json:"errorCode,omitempty"`
	Provider   string    `json:"provider,omitempty"`
	Retryable  bool      `json:"retryable,omitempty"`
	CloseCode  int64     `json:"closeCode,omitempty"`
	RTTMs      float64   `json:"rttMs,omitempty"`
	DurationMs int64     `json:"durationMs,omitempty"`
	Messages   int64     `json:"messagesSent,omitempty"`
	Network    string    `json:"networkType,omitempty"`
	AppVersion string    `json:"appVersion,omitempty"`
}

// JobView is the answer of GET /dashboard/api/jobs/{jobId}.
type JobView struct {
	JobID string `json:"jobId"`
	// State is the job's current state; null when the job store has no
	// such job (never created, or removed by retention).
	State       *protocol.JobState `json:"state"`
	Connections []hub.ConnInfo     `json:"connections"`
	// Timeline is the job's telemetry events, oldest first: the latest
	// maxTimeline of them when Truncated.
	Timeline  []TimelineEvent `json:"timeline"`
	Truncated bool            `json:"truncated"`
}

// timelineSQL reads a job's events, newest first. It is plain SQL that both
// telemetry dialects take.
const timelineSQL = "SELECT ts, event, node, conn_id, reason, error_code, provider, retryable, close_code, " +
	"rtt_ms, duration_ms, messages_sent, network_type, app_version FROM events WHERE job_id = ? ORDER BY ts DESC LIMIT ?"

// job answers the job inspector.
func (h *Handler) job(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("jobId")
	if id == "" || len(id) > maxJobIDLength {
		httputil.WriteError(w, 0, jobcast.Errorf(protocol.ErrBadRequest, "a job id has 1 to %d characters", maxJobIDLength))
		return
	}
	v := JobView{JobID: id, Connections: []hub.ConnInfo{}, Timeline: []TimelineEvent{}}
	if h.opt.Jobs != nil {
		job, err := h.opt.Jobs.Get(r.Context(), id)
		switch {
		case err == nil:
			v.State = &job.JobState
		case errors.Is(err, jobcast.ErrJobNotFound) || jobcast.ErrorCode(err) == protocol.ErrJobNotFound:
		default:
			h.fail(w, r, err)
			return
		}
	}
	if h.opt.Live != nil {
		v.Connections = h.opt.Live.Connections(id)
	}
	if h.opt.Events != nil {
		rows, err := h.opt.Events.Query(r.Context(), timelineSQL, id, int64(maxTimeline+1))
		if err != nil {
			h.fail(w, r, fmt.Errorf("job timeline: %w", err))
			return
		}
		for _, row := range rows.Rows {
			if len(v.Timeline) == maxTimeline {
				v.Truncated = true
				break
			}
			v.Timeline = append(v.Timeline, timelineEvent(row))
		}
		slices.Reverse(v.Timeline)
	}
	if v.State == nil && len(v.Connections) == 0 && len(v.Timeline) == 0 {
		httputil.WriteError(w, 0, jobcast.Errorf(protocol.ErrJobNotFound, "no job %q: no state, connections or telemetry events", id))
		return
	}
	httputil.WriteJSON(w, http.StatusOK, v)
}

func timelineEvent(r []any) TimelineEvent {
	var e TimelineEvent
	if len(r) != 14 {
		return e
	}
	e.TS, _ = r[0].(time.Time)
	e.TS = e.TS.UTC()
	e.Event = str(r[1])
	e.Node = str(r[2])
	e.ConnID = str(r[3])
	e.Reason = str(r[4])
	e.ErrorCode = str(r[5])
	e.Provider = str(r[6])
	e.Retryable, _ = r[7].(bool)
	e.CloseCode = int64(num(r[8]))
	e.RTTMs = num(r[9])
	e.DurationMs = int64(num(r[10]))
	e.Messages = int64(num(r[11]))
	e.Network = str(r[12])
	e.AppVersion = str(r[13])
	return e
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return ""
}

func num(v any) float64 {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case int32:
		return float64(x)
	case int:
		return float64(x)
	case float64:
		return x
	case float32:
		return float64(x)
	case uint64:
		return float64(x)
	}
	return 0
}
