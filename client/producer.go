package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jobcast/jobcast/protocol"
)

// APIError is an error answer from the jobcast HTTP API.
type APIError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	return fmt.Sprintf("jobcast: %d %s: %s", e.Status, e.Code, e.Message)
}

// Producer calls the producer API with an API key.
type Producer struct {
	BaseURL string
	APIKey  string
	HTTP    *http.Client
}

// NewProducer returns a producer client for the server at baseURL
// (http://host:port).
func NewProducer(baseURL, apiKey string) *Producer {
	return &Producer{
		BaseURL: strings.TrimRight(baseURL, "/"),
		APIKey:  apiKey,
		HTTP:    &http.Client{Timeout: 15 * time.Second},
	}
}

// CreateJobRequest is the body of POST /v1/jobs.
type CreateJobRequest struct {
	JobID      string          `json:"jobId,omitempty"`
	Pipeline   string          `json:"pipeline"`
	TotalCount int64           `json:"totalCount,omitempty"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
}

// Ticket is what a client needs to watch a job.
type Ticket struct {
	JobID        string    `json:"jobId"`
	Token        string    `json:"token"`
	ExpiresAt    time.Time `json:"expiresAt"`
	WebsocketURL string    `json:"websocketUrl"`
}

// AppendResult is the answer to an event post.
type AppendResult struct {
	Accepted int    `json:"accepted"`
	Seq      int64  `json:"seq"`
	Status   string `json:"status"`
	// Durable is false when the server delivered the events but holds them
	// in memory because its disk refuses writes: a crash before they are
	// written loses them (docs/security.md section 4).
	Durable bool `json:"durable"`
}

// CreateJob creates a job and returns its first client ticket.
func (p *Producer) CreateJob(ctx context.Context, req CreateJobRequest) (*Ticket, error) {
	var t Ticket
	if err := p.do(ctx, http.MethodPost, "/v1/jobs", req, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// SendEvent posts one event.
func (p *Producer) SendEvent(ctx context.Context, jobID string, ev protocol.ProducerEvent) (*AppendResult, error) {
	var r AppendResult
	if err := p.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(jobID)+"/events", ev, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// SendEvents posts a batch, applied whole or not at all.
func (p *Producer) SendEvents(ctx context.Context, jobID string, evs []protocol.ProducerEvent) (*AppendResult, error) {
	var r AppendResult
	if err := p.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(jobID)+"/events", evs, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// NewEvent builds a producer event from a payload value.
func NewEvent(typ string, payload any) protocol.ProducerEvent {
	raw, _ := json.Marshal(payload)
	return protocol.ProducerEvent{Type: typ, Payload: raw}
}

// GetJob returns the job's current state.
func (p *Producer) GetJob(ctx context.Context, jobID string) (*protocol.JobState, error) {
	var s protocol.JobState
	if err := p.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(jobID), nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// NewToken returns a fresh client ticket for the job.
func (p *Producer) NewToken(ctx context.Context, jobID string) (*Ticket, error) {
	var t Ticket
	if err := p.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(jobID)+"/token", nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// RevokeTokens revokes every token issued for the job so far and closes the
// connections that use them.
func (p *Producer) RevokeTokens(ctx context.Context, jobID string) error {
	return p.do(ctx, http.MethodDelete, "/v1/jobs/"+url.PathEscape(jobID)+"/tokens", nil, nil)
}

func (p *Producer) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("jobcast: encode request: %w", err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.BaseURL+path, body)
	if err != nil {
		return fmt.Errorf("jobcast: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+p.APIKey)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("jobcast: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("jobcast: read response: %w", err)
	}
	if resp.StatusCode >= 300 {
		return apiError(resp, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("jobcast: decode response: %w", err)
		}
	}
	return nil
}

func apiError(resp *http.Response, body []byte) *APIError {
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	e := &APIError{Status: resp.StatusCode}
	if json.Unmarshal(body, &eb) == nil {
		e.Code, e.Message = eb.Error.Code, eb.Error.Message
	}
	if e.Code == "" {
		e.Code, e.Message = "E_HTTP", http.StatusText(resp.StatusCode)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}
