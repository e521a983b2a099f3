package hub_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

// testSecret is the JWT secret jobcasttest signs with when none is configured.
const testSecret = "test-jwt-secret-0123456789-0123456789"

// signed mints a token with the given signing method, key and claims.
func signed(t *testing.T, method jwt.SigningMethod, key any, claims jwt.Claims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// algNone is an unsigned token for jobID, which must never be accepted.
func algNone(jobID string, now time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		enc([]byte(`{"sub":"`+jobID+`","exp":`+strconv.FormatInt(now.Add(time.Hour).Unix(), 10)+`}`)) + "."
}

func TestTokenTransports(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	tk := e.createJob(t)
	jobQ := url.Values{"jobId": {tk.JobID}}
	tests := []struct {
		name         string
		url          string
		header       http.Header
		subprotocols []string
		wantProto    string
	}{
		{name: "authorization header", url: e.wsURL(jobQ), header: bearer(tk.Token)},
		{name: "lower-case bearer", url: e.wsURL(jobQ), header: http.Header{"Authorization": {"bearer " + tk.Token}}},
		{name: "query token", url: e.wsURL(url.Values{"jobId": {tk.JobID}, "token": {tk.Token}})},
		{name: "query token without jobId", url: e.wsURL(url.Values{"token": {tk.Token}})},
		{name: "subprotocol", url: e.wsURL(jobQ), subprotocols: []string{protocol.Subprotocol, protocol.BearerSubprotocolPrefix + tk.Token}, wantProto: protocol.Subprotocol},
		{name: "websocketUrl from job creation", url: tk.WebsocketURL, header: bearer(tk.Token)},
		{name: "token without kid", url: e.wsURL(jobQ), header: bearer(signed(t, jwt.SigningMethodHS256, []byte(testSecret),
			jwt.RegisteredClaims{Subject: tk.JobID, IssuedAt: jwt.NewNumericDate(epoch), ExpiresAt: jwt.NewNumericDate(epoch.Add(time.Hour))}, ""))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, tt.url, tt.header, tt.subprotocols...)
			if got := c.c.Subprotocol(); got != tt.wantProto {
				t.Errorf("selected subprotocol %q, want %q", got, tt.wantProto)
			}
			r := c.ready()
			if r.State.JobID != tk.JobID {
				t.Errorf("ready for job %q, want %q", r.State.JobID, tk.JobID)
			}
		})
	}
}

func TestHandshakeFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{TokenTTL: time.Minute})
	job := e.createJob(t)
	other := e.createJob(t)
	revoked := e.createJob(t)
	expired := e.createJob(t) // its token expires below; the others are re-issued
	e.clock.Advance(2 * time.Minute)
	ctx := ctxT(t)
	fresh := func(jobID string) string {
		t.Helper()
		tk, err := e.srv.Producer.NewToken(ctx, jobID)
		if err != nil {
			t.Fatal(err)
		}
		return tk.Token
	}
	jobTok, otherTok, revokedTok := fresh(job.JobID), fresh(other.JobID), fresh(revoked.JobID)
	if err := e.srv.Producer.RevokeTokens(ctx, revoked.JobID); err != nil {
		t.Fatal(err)
	}
	unknownTok, _, err := e.srv.Tokens.Issue("no-such-job")
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	otherKey := signed(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789-0123456789"),
		jwt.RegisteredClaims{Subject: job.JobID, ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}, "")
	noExp := signed(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.RegisteredClaims{Subject: job.JobID}, "")

	q := func(jobID string) string { return e.wsURL(url.Values{"jobId": {jobID}}) }
	tests := []struct {
		name       string
		url        string
		header     http.Header
		subproto   []string
		wantStatus int
		wantCode   string
	}{
		{"expired", q(expired.JobID), bearer(expired.Token), nil, 401, protocol.ErrTokenExpired},
		{"garbage", q(job.JobID), bearer("not-a-jwt"), nil, 401, protocol.ErrTokenInvalid},
		{"alg none", q(job.JobID), bearer(algNone(job.JobID, now)), nil, 401, protocol.ErrTokenInvalid},
		{"wrong key", q(job.JobID), bearer(otherKey), nil, 401, protocol.ErrTokenInvalid},
		{"no exp", q(job.JobID), bearer(noExp), nil, 401, protocol.ErrTokenInvalid},
		{"garbage in query", e.wsURL(url.Values{"jobId": {job.JobID}, "token": {"x.y.z"}}), nil, nil, 401, protocol.ErrTokenInvalid},
		{"garbage in subprotocol", q(job.JobID), nil, []string{protocol.Subprotocol, protocol.BearerSubprotocolPrefix + "x.y.z"}, 401, protocol.ErrTokenInvalid},
		{"token for another job", q(job.JobID), bearer(otherTok), nil, 403, protocol.ErrTokenInvalid},
		{"revoked", q(revoked.JobID), bearer(revokedTok), nil, 403, protocol.ErrTokenInvalid},
		{"unknown job", q("no-such-job"), bearer(unknownTok), nil, 404, protocol.ErrJobNotFound},
		{"unknown job, no jobId", e.wsURL(url.Values{"token": {unknownTok}}), nil, nil, 404, protocol.ErrJobNotFound},
		{"no token, no jobId", e.srv.WSURL, nil, nil, 400, protocol.ErrBadRequest},
		{"bad lastSeq", e.wsURL(url.Values{"jobId": {job.JobID}, "lastSeq": {"-1"}}), bearer(jobTok), nil, 400, protocol.ErrBadRequest},
		{"bad X-Last-Seq", q(job.JobID), http.Header{"Authorization": {"Bearer " + jobTok}, "X-Last-Seq": {"abc"}}, nil, 400, protocol.ErrBadRequest},
		{"bad X-Reconnect-Attempt", q(job.JobID), http.Header{"Authorization": {"Bearer " + jobTok}, "X-Reconnect-Attempt": {"-2"}}, nil, 400, protocol.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, resp, err := dialRaw(t, tt.url, tt.header, tt.subproto...)
			if err == nil {
				t.Fatalf("handshake succeeded, want HTTP %d", tt.wantStatus)
			}
			if resp == nil {
				t.Fatalf("no HTTP response: %v", err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if code, msg := httpError(t, resp); code != tt.wantCode {
				t.Errorf("error code = %s (%s), want %s", code, msg, tt.wantCode)
			}
		})
	}
	// The valid token still works: the failures above changed nothing.
	c := dial(t, q(job.JobID), bearer(jobTok))
	c.ready()
}

func TestHandshakeRateLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		cfg      jobcast.Config
		wantCode string
	}{
		{"new connections per second", jobcast.Config{NewConnsPerSecPerIP: 1}, protocol.ErrRateLimited},
		{"connections per job", jobcast.Config{MaxConnsPerJob: 1}, protocol.ErrTooManyConns},
		{"connections per IP", jobcast.Config{MaxConnsPerIP: 1}, protocol.ErrRateLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tt.cfg)
			tk := e.createJob(t)
			first, _ := e.open(t, tk)
			_, resp, err := dialRaw(t, e.wsURL(url.Values{"jobId": {tk.JobID}}), bearer(tk.Token))
			if err == nil {
				t.Fatal("second connection was accepted")
			}
			if resp == nil {
				t.Fatalf("no HTTP response: %v", err)
			}
			if resp.StatusCode != http.StatusTooManyRequests {
				t.Errorf("status = %d, want 429", resp.StatusCode)
			}
			if resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			if code, _ := httpError(t, resp); code != tt.wantCode {
				t.Errorf("code = %s, want %s", code, tt.wantCode)
			}
			// The first connection is unharmed.
			first.expectNothing()
		})
	}
}

// A connection that brought its token in a hello frame and is over the job's
// connection limit is closed with 4029.
func TestHelloOverJobLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{MaxConnsPerJob: 1})
	tk := e.createJob(t)
	e.open(t, tk)
	c := dial(t, e.wsURL(url.Values{"jobId": {tk.JobID}}), nil)
	c.send(protocol.TypeHello, protocol.Hello{Token: tk.Token})
	c.expectError(protocol.ErrTooManyConns)
	c.expectClose(protocol.CloseRateLimited)
}

func TestHelloAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{TokenTTL: time.Minute})
	job := e.createJob(t)
	other := e.createJob(t)
	revoked := e.createJob(t)
	e.clock.Advance(2 * time.Minute) // job.Token is expired now
	ctx := ctxT(t)
	fresh := func(jobID string) string {
		t.Helper()
		tk, err := e.srv.Producer.NewToken(ctx, jobID)
		if err != nil {
			t.Fatal(err)
		}
		return tk.Token
	}
	jobTok, otherTok, revokedTok := fresh(job.JobID), fresh(other.JobID), fresh(revoked.JobID)
	if err := e.srv.Producer.RevokeTokens(ctx, revoked.JobID); err != nil {
		t.Fatal(err)
	}
	unknownTok, _, err := e.srv.Tokens.Issue("no-such-job")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		jobID     string
		token     string
		wantError string
		wantClose int
	}{
		{"valid", job.JobID, jobTok, "", 0},
		{"expired", job.JobID, job.Token, protocol.ErrTokenExpired, protocol.CloseTokenExpired},
		{"garbage", job.JobID, "garbage", protocol.ErrTokenInvalid, protocol.CloseTokenInvalid},
		{"alg none", job.JobID, algNone(job.JobID, e.clock.Now()), protocol.ErrTokenInvalid, protocol.CloseTokenInvalid},
		{"no token", job.JobID, "", protocol.ErrTokenInvalid, protocol.CloseTokenInvalid},
		{"token for another job", job.JobID, otherTok, protocol.ErrTokenInvalid, protocol.CloseTokenInvalid},
		{"revoked", revoked.JobID, revokedTok, protocol.ErrTokenInvalid, protocol.CloseTokenInvalid},
		{"unknown job", "no-such-job", unknownTok, protocol.ErrJobNotFound, protocol.CloseJobNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, e.wsURL(url.Values{"jobId": {tt.jobID}}), nil)
			c.send(protocol.TypeHello, protocol.Hello{Token: tt.token, NetworkType: "wifi"})
			if tt.wantClose == 0 {
				r := c.ready()
				if r.State.JobID != tt.jobID || r.Resumed {
					t.Errorf("ready = %+v", r)
				}
				return
			}
			c.expectError(tt.wantError)
			c.expectClose(tt.wantClose)
		})
	}
}

func TestHelloTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{HelloTimeout: 5 * time.Second})
	tk := e.createJob(t)
	c := dial(t, e.wsURL(url.Values{"jobId": {tk.JobID}}), nil)
	e.waitTimers(t, 1)
	e.clock.Advance(5*time.Second - time.Millisecond)
	c.expectNothing()
	e.clock.Advance(time.Millisecond)
	c.expectError(protocol.ErrTokenInvalid)
	c.expectClose(protocol.CloseTokenInvalid)
}

func TestRevokeClosesLiveConnections(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	tk := e.createJob(t)
	bystander := e.createJob(t)
	header, _ := e.open(t, tk)
	hello := dial(t, e.wsURL(url.Values{"jobId": {tk.JobID}}), nil)
	hello.send(protocol.TypeHello, protocol.Hello{Token: tk.Token})
	hello.ready()
	other, _ := e.open(t, bystander)

	if err := e.srv.Producer.RevokeTokens(ctxT(t), tk.JobID); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*ws{header, hello} {
		c.expectError(protocol.ErrTokenInvalid)
		c.expectClose(protocol.CloseTokenInvalid)
	}
	other.expectNothing() // another job's clients are untouched

	// A token issued after the revocation opens the job again.
	e.clock.Advance(2 * time.Second)
	nt, err := e.srv.Producer.NewToken(ctxT(t), tk.JobID)
	if err != nil {
		t.Fatal(err)
	}
	e.open(t, nt)
	// And the old one stays revoked at the handshake.
	_, resp, err := dialRaw(t, e.wsURL(url.Values{"jobId": {tk.JobID}}), bearer(tk.Token))
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("old token after revoke: err %v, resp %v; want 403", err, resp)
	}
}
