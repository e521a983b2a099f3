package jobcast

import (
	"encoding/json"

	"github.com/jobcast/jobcast/protocol"
)

// CatalogEntry is what clients are told about an error code: a user-facing
// message and whether retrying can help.
type CatalogEntry struct {
	Message   string `json:"message" yaml:"message"`
	Retryable bool   `json:"retryable" yaml:"retryable"`
}

// DefaultCatalog is the built-in error catalog. Config may override entries
// and add producer codes.
func DefaultCatalog() map[string]CatalogEntry {
	return map[string]CatalogEntry{
		protocol.ErrTokenExpired:     {"Your session has expired. Please refresh to keep watching this job.", true},
		protocol.ErrTokenInvalid:     {"You are not allowed to watch this job.", false},
		protocol.ErrJobNotFound:      {"This job no longer exists.", false},
		protocol.ErrConnectionLost:   {"Connection lost. Reconnecting…", true},
		protocol.ErrRateLimited:      {"Too many requests. Retrying shortly.", true},
		protocol.ErrProtocol:         {"The app sent a message the server did not understand.", false},
		protocol.ErrInternal:         {"Something went wrong on our side. Retrying.", true},
		protocol.ErrTooManyConns:     {"Too many viewers for this job.", true},
		protocol.ErrUnavailable:      {"The service is restarting. Reconnecting…", true},
		protocol.ErrGeminiTimeout:    {"The AI service took too long to answer. Retrying.", true},
		protocol.ErrEnrichmentFailed: {"We could not enrich some records.", false},
	}
}

// Catalog resolves error codes to user messages and retryable flags.
type Catalog struct {
	entries map[string]CatalogEntry
}

// NewCatalog returns the default catalog with overrides applied.
func NewCatalog(overrides map[string]CatalogEntry) *Catalog {
	c := &Catalog{entries: DefaultCatalog()}
	for code, e := range overrides {
		c.entries[code] = e
	}
	return c
}

// Lookup returns the entry for code and whether the catalog knows it.
func (c *Catalog) Lookup(code string) (CatalogEntry, bool) {
	e, ok := c.entries[code]
	return e, ok
}

// Payload builds the error payload clients see for code. A message or
// retryable flag given by the producer wins; the catalog fills what is
// missing; unknown codes pass through with whatever the producer sent.
func (c *Catalog) Payload(code string, message *string, retryable *bool, details json.RawMessage) protocol.ErrorPayload {
	p := protocol.ErrorPayload{Code: code, Details: details}
	e, known := c.entries[code]
	switch {
	case message != nil && *message != "":
		p.Message = *message
	case known:
		p.Message = e.Message
	default:
		p.Message = "An error occurred (" + code + ")."
	}
	switch {
	case retryable != nil:
		p.Retryable = *retryable
	case known:
		p.Retryable = e.Retryable
	}
	return p
}

// Entries returns a copy of the catalog, for documentation and admin APIs.
func (c *Catalog) Entries() map[string]CatalogEntry {
	out := make(map[string]CatalogEntry, len(c.entries))
	for k, v := range c.entries {
		out[k] = v
	}
	return out
}
