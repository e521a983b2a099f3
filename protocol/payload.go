package protocol

import (
	"encoding/json"
	"time"
)

// Job statuses as they appear in JobState.Status.
const (
	StatusPending   = "pending"
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
)

// Network types a client may report; anything else is recorded as unknown.
const (
	NetworkWifi     = "wifi"
	NetworkCellular = "cellular"
	NetworkEthernet = "ethernet"
	NetworkUnknown  = "unknown"
)

// JobState is the snapshot of a job: the body of GET /v1/jobs/{id} and the
// "state" of a ready frame.
type JobState struct {
	JobID          string          `json:"jobId"`
	Pipeline       string          `json:"pipeline"`
	Status         string          `json:"status"`
	Seq            int64           `json:"seq"`
	ProcessedCount int64           `json:"processedCount"`
	TotalCount     int64           `json:"totalCount"`
	SuccessCount   int64           `json:"successCount"`
	FailureCount   int64           `json:"failureCount"`
	LastError      *ErrorPayload   `json:"lastError"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	Result         json.RawMessage `json:"result,omitempty"`
	CreatedAt      time.Time       `json:"createdAt"`
	UpdatedAt      time.Time       `json:"updatedAt"`
}

// Finished reports whether the job reached a terminal status.
func (s *JobState) Finished() bool {
	return s.Status == StatusCompleted || s.Status == StatusFailed
}

// Ready is the payload of the first server frame on every connection.
type Ready struct {
	ConnectionID        string   `json:"connectionId"`
	HeartbeatIntervalMs int64    `json:"heartbeatIntervalMs"`
	PongTimeoutMs       int64    `json:"pongTimeoutMs"`
	ThrottleMs          int64    `json:"throttleMs"`
	Resumed             bool     `json:"resumed"`
	LastSeq             int64    `json:"lastSeq"`
	ServerTime          int64    `json:"serverTime"`
	State               JobState `json:"state"`
}

// ErrorPayload is the payload of error and job_failed frames, and a job's
// lastError.
type ErrorPayload struct {
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Retryable bool            `json:"retryable"`
	Details   json.RawMessage `json:"details,omitempty"`
}

// Progress is the payload of job_progress frames. Producers may add fields of
// their own; the server forwards the producer's object unchanged.
type Progress struct {
	ProcessedCount int64  `json:"processedCount"`
	TotalCount     int64  `json:"totalCount,omitempty"`
	CurrentItem    string `json:"currentItem,omitempty"`
	Message        string `json:"message,omitempty"`
}

// Started is the payload of job_started frames.
type Started struct {
	TotalCount int64 `json:"totalCount,omitempty"`
}

// Completed is the payload of job_completed frames.
type Completed struct {
	SuccessCount int64           `json:"successCount"`
	FailureCount int64           `json:"failureCount"`
	Result       json.RawMessage `json:"result,omitempty"`
}

// Ping is the payload of ping frames. The server stamps ServerTime (Unix
// milliseconds on its own clock); a client's pong echoes it so the server can
// measure the round trip without trusting the client's clock.
type Ping struct {
	ServerTime int64 `json:"serverTime,omitempty"`
	ClientTime int64 `json:"clientTime,omitempty"`
}

// Pong is the payload of pong frames: the echoed ServerTime of the ping it
// answers (client to server), or the client's ClientTime with the server's
// clock (server to client).
type Pong struct {
	ServerTime int64 `json:"serverTime,omitempty"`
	ClientTime int64 `json:"clientTime,omitempty"`
}

// Hello carries client context, and optionally the token and resume point,
// for clients that cannot set headers or query parameters.
type Hello struct {
	Token            string `json:"token,omitempty"`
	AppVersion       string `json:"appVersion,omitempty"`
	OSVersion        string `json:"osVersion,omitempty"`
	NetworkType      string `json:"networkType,omitempty"`
	DeviceModel      string `json:"deviceModel,omitempty"`
	LastSeq          *int64 `json:"lastSeq,omitempty"`
	ReconnectAttempt int    `json:"reconnectAttempt,omitempty"`
	LastDisconnect   string `json:"lastDisconnect,omitempty"`
}

// maxContextField bounds each client-context string.
const maxContextField = 128

// Validate checks the hello's fields; its errors are *ErrFrame.
func (h *Hello) Validate() error {
	for name, v := range map[string]string{
		"appVersion": h.AppVersion, "osVersion": h.OSVersion,
		"networkType": h.NetworkType, "deviceModel": h.DeviceModel,
		"lastDisconnect": h.LastDisconnect,
	} {
		if len(v) > maxContextField {
			return frameErr("hello field %s longer than %d bytes", name, maxContextField)
		}
	}
	if h.LastSeq != nil && *h.LastSeq < 0 {
		return frameErr("hello lastSeq must be >= 0")
	}
	if h.ReconnectAttempt < 0 {
		return frameErr("hello reconnectAttempt must be >= 0")
	}
	return nil
}

// NormalizeNetworkType maps a reported network type onto the known set.
func NormalizeNetworkType(s string) string {
	switch s {
	case NetworkWifi, NetworkCellular, NetworkEthernet:
		return s
	}
	return NetworkUnknown
}
