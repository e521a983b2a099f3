package hub

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/jobcast/jobcast/protocol"
)

// readyFrame is envelope(TypeReady, r), byte for byte
// (TestReadyFrameMatchesJSON), encoded without reflection: every new
// connection sends one, and encoding/json made it 4.5 % of the server's CPU
// under churn. Values encoding/json would fail on take the envelope path,
// which answers as before.
func (c *conn) readyFrame(r *protocol.Ready) []byte {
	s := &r.State
	// Room for the envelope and a payload without raw JSON.
	n := 640 + 2*len(c.jobID) + 2*len(c.pipeline) + len(r.ConnectionID) + len(s.Status) + len(s.Metadata) + len(s.Result)
	b := c.appendEnvelopeHead(make([]byte, 0, n), protocol.TypeReady, c.now().UnixMilli())
	b, ok := appendReady(b, r)
	if !ok {
		return c.envelope(protocol.TypeReady, r)
	}
	return append(b, '}')
}

// appendReady appends r as json.Marshal writes it; false when encoding/json
// would fail (invalid raw JSON, a time it cannot write).
func appendReady(b []byte, r *protocol.Ready) ([]byte, bool) {
	b = append(b, `{"connectionId":`...)
	b = appendJSONString(b, r.ConnectionID)
	b = append(b, `,"heartbeatIntervalMs":`...)
	b = strconv.AppendInt(b, r.HeartbeatIntervalMs, 10)
	b = append(b, `,"pongTimeoutMs":`...)
	b = strconv.AppendInt(b, r.PongTimeoutMs, 10)
	b = append(b, `,"throttleMs":`...)
	b = strconv.AppendInt(b, r.ThrottleMs, 10)
	b = append(b, `,"resumed":`...)
	b = strconv.AppendBool(b, r.Resumed)
	b = append(b, `,"lastSeq":`...)
	b = strconv.AppendInt(b, r.LastSeq, 10)
	b = append(b, `,"serverTime":`...)
	b = strconv.AppendInt(b, r.ServerTime, 10)
	s := &r.State
	b = append(b, `,"state":{"jobId":`...)
	b = appendJSONString(b, s.JobID)
	b = append(b, `,"pipeline":`...)
	b = appendJSONString(b, s.Pipeline)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, s.Status)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, s.Seq, 10)
	b = append(b, `,"processedCount":`...)
	b = strconv.AppendInt(b, s.ProcessedCount, 10)
	b = append(b, `,"totalCount":`...)
	b = strconv.AppendInt(b, s.TotalCount, 10)
	b = append(b, `,"successCount":`...)
	b = strconv.AppendInt(b, s.SuccessCount, 10)
	b = append(b, `,"failureCount":`...)
	b = strconv.AppendInt(b, s.FailureCount, 10)
	b = append(b, `,"lastError":`...)
	ok := true
	if s.LastError == nil {
		b = append(b, "null"...)
	} else {
		b, ok = appendMarshal(b, s.LastError)
	}
	// Raw JSON goes through encoding/json, which compacts and escapes it
	// as it does inside the state.
	if ok && len(s.Metadata) > 0 {
		b = append(b, `,"metadata":`...)
		b, ok = appendMarshal(b, s.Metadata)
	}
	if ok && len(s.Result) > 0 {
		b = append(b, `,"result":`...)
		b, ok = appendMarshal(b, s.Result)
	}
	if ok {
		b = append(b, `,"createdAt":`...)
		b, ok = appendJSONTime(b, s.CreatedAt)
	}
	if ok {
		b = append(b, `,"updatedAt":`...)
		b, ok = appendJSONTime(b, s.UpdatedAt)
	}
	return append(b, "}}"...), ok
}

func appendMarshal(b []byte, v any) ([]byte, bool) {
	m, err := json.Marshal(v)
	return append(b, m...), err == nil
}

// appendJSONString appends s quoted as encoding/json writes it.
func appendJSONString(b []byte, s string) []byte {
	if safeJSONString(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// appendJSONTime appends t as time.Time.MarshalJSON writes it, false where
// that fails: a year outside [0,9999] or a zone offset of 24 hours or more.
func appendJSONTime(b []byte, t time.Time) ([]byte, bool) {
	b = append(b, '"')
	n0 := len(b)
	b = t.AppendFormat(b, time.RFC3339Nano)
	ok := len(b) > n0+4 && b[n0+4] == '-'
	if ok && b[len(b)-1] != 'Z' {
		z := b[len(b)-len("Z07:00"):]
		ok = (z[0] == '+' || z[0] == '-') && 10*(z[1]-'0')+(z[2]-'0') < 24
	}
	return append(b, '"'), ok
}
