package protocol

// WebSocket close codes used by jobcast. 1000–1011 are RFC 6455 codes; the
// 4xxx codes are jobcast's own and mirror HTTP statuses where they can.
const (
	CloseJobFinished      = 1000 // terminal frame delivered; do not reconnect
	CloseGoingAway        = 1001 // server shutting down; reconnect (elsewhere)
	ClosePolicyViolation  = 1008 // repeated protocol violations or a slow consumer
	CloseMessageTooBig    = 1009 // a frame over the size limit
	CloseInternalError    = 1011 // unexpected server failure; reconnect
	CloseTokenExpired     = 4001 // token expired; get a fresh token
	CloseTokenInvalid     = 4003 // token not valid for this job, or revoked
	CloseJobNotFound      = 4004 // no such job; do not reconnect
	CloseHeartbeatTimeout = 4008 // no pong within pongTimeoutMs
	CloseRateLimited      = 4029 // too many connections; back off
)

// Error codes of the catalog. Producers may send their own codes too (for
// example E_GEMINI_TIMEOUT); unknown codes pass through unchanged.
const (
	ErrTokenExpired     = "E_TOKEN_EXPIRED"
	ErrTokenInvalid     = "E_TOKEN_INVALID"
	ErrJobNotFound      = "E_JOB_NOT_FOUND"
	ErrConnectionLost   = "E_CONNECTION_LOST"
	ErrRateLimited      = "E_RATE_LIMITED"
	ErrProtocol         = "E_PROTOCOL"
	ErrInternal         = "E_INTERNAL"
	ErrUnauthorized     = "E_UNAUTHORIZED"
	ErrBadRequest       = "E_BAD_REQUEST"
	ErrJobFinished      = "E_JOB_FINISHED"
	ErrJobExists        = "E_JOB_EXISTS"
	ErrTooLarge         = "E_TOO_LARGE"
	ErrTooManyConns     = "E_TOO_MANY_CONNECTIONS"
	ErrUnavailable      = "E_UNAVAILABLE"
	ErrGeminiTimeout    = "E_GEMINI_TIMEOUT"
	ErrEnrichmentFailed = "E_ENRICHMENT_FAILED"
)
