package jobcast_test

import (
	"encoding/json"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

func ptr[T any](v T) *T { return &v }

func TestCatalogPayload(t *testing.T) {
	t.Parallel()
	cat := jobcast.NewCatalog(map[string]jobcast.CatalogEntry{
		"E_GEMINI_TIMEOUT": {Message: "Gemini is slow.", Retryable: false},
		"E_QUOTA":          {Message: "Quota reached.", Retryable: true},
	})
	details := json.RawMessage(`{"provider":"gemini"}`)
	tests := []struct {
		name      string
		cat       *jobcast.Catalog
		code      string
		message   *string
		retryable *bool
		details   json.RawMessage
		want      protocol.ErrorPayload
	}{
		{
			name: "catalog fills message and retryable", cat: jobcast.NewCatalog(nil), code: "E_GEMINI_TIMEOUT",
			want: protocol.ErrorPayload{Code: "E_GEMINI_TIMEOUT", Message: "The AI service took too long to answer. Retrying.", Retryable: true},
		},
		{
			name: "producer message wins", cat: jobcast.NewCatalog(nil), code: "E_GEMINI_TIMEOUT", message: ptr("Gemini timed out after 30s."),
			want: protocol.ErrorPayload{Code: "E_GEMINI_TIMEOUT", Message: "Gemini timed out after 30s.", Retryable: true},
		},
		{
			name: "producer retryable false wins", cat: jobcast.NewCatalog(nil), code: "E_GEMINI_TIMEOUT", retryable: ptr(false),
			want: protocol.ErrorPayload{Code: "E_GEMINI_TIMEOUT", Message: "The AI service took too long to answer. Retrying.", Retryable: false},
		},
		{
			name: "producer retryable true wins", cat: jobcast.NewCatalog(nil), code: "E_ENRICHMENT_FAILED", retryable: ptr(true),
			want: protocol.ErrorPayload{Code: "E_ENRICHMENT_FAILED", Message: "We could not enrich some records.", Retryable: true},
		},
		{
			name: "empty producer message falls back to the catalog", cat: jobcast.NewCatalog(nil), code: "E_ENRICHMENT_FAILED", message: ptr(""),
			want: protocol.ErrorPayload{Code: "E_ENRICHMENT_FAILED", Message: "We could not enrich some records.", Retryable: false},
		},
		{
			name: "details pass through", cat: jobcast.NewCatalog(nil), code: "E_GEMINI_TIMEOUT", details: details,
			want: protocol.ErrorPayload{Code: "E_GEMINI_TIMEOUT", Message: "The AI service took too long to answer. Retrying.", Retryable: true, Details: details},
		},
		{
			name: "unknown code passes through", cat: jobcast.NewCatalog(nil), code: "E_SOMETHING_NEW",
			want: protocol.ErrorPayload{Code: "E_SOMETHING_NEW", Message: "An error occurred (E_SOMETHING_NEW).", Retryable: false},
		},
		{
			name: "unknown code keeps the producer's fields", cat: jobcast.NewCatalog(nil), code: "E_SOMETHING_NEW", message: ptr("custom"), retryable: ptr(true),
			want: protocol.ErrorPayload{Code: "E_SOMETHING_NEW", Message: "custom", Retryable: true},
		},
		{
			name: "config overrides a default", cat: cat, code: "E_GEMINI_TIMEOUT",
			want: protocol.ErrorPayload{Code: "E_GEMINI_TIMEOUT", Message: "Gemini is slow.", Retryable: false},
		},
		{
			name: "config adds a producer code", cat: cat, code: "E_QUOTA",
			want: protocol.ErrorPayload{Code: "E_QUOTA", Message: "Quota reached.", Retryable: true},
		},
		{
			name: "producer still wins over an override", cat: cat, code: "E_QUOTA", message: ptr("Monthly quota."), retryable: ptr(false),
			want: protocol.ErrorPayload{Code: "E_QUOTA", Message: "Monthly quota.", Retryable: false},
		},
		{
			name: "overrides keep the other defaults", cat: cat, code: "E_TOKEN_EXPIRED",
			want: protocol.ErrorPayload{Code: "E_TOKEN_EXPIRED", Message: "Your session has expired. Please refresh to keep watching this job.", Retryable: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.cat.Payload(tt.code, tt.message, tt.retryable, tt.details)
			if got.Code != tt.want.Code || got.Message != tt.want.Message || got.Retryable != tt.want.Retryable || string(got.Details) != string(tt.want.Details) {
				t.Fatalf("Payload = %+v (details %s)\nwant      %+v (details %s)", got, got.Details, tt.want, tt.want.Details)
			}
		})
	}
}

func TestCatalogDefaultsCoverSpecCodes(t *testing.T) {
	t.Parallel()
	cat := jobcast.NewCatalog(nil)
	for _, code := range []string{
		protocol.ErrTokenExpired, protocol.ErrTokenInvalid, protocol.ErrJobNotFound, protocol.ErrConnectionLost,
		protocol.ErrRateLimited, protocol.ErrProtocol, protocol.ErrInternal, protocol.ErrGeminiTimeout, protocol.ErrEnrichmentFailed,
	} {
		e, ok := cat.Lookup(code)
		if !ok || e.Message == "" {
			t.Errorf("Lookup(%s) = %+v, %v; want a default entry", code, e, ok)
		}
	}
	if _, ok := cat.Lookup("E_NOPE"); ok {
		t.Error("Lookup(E_NOPE) found an entry")
	}
}

func TestCatalogIsolation(t *testing.T) {
	t.Parallel()
	overrides := map[string]jobcast.CatalogEntry{"E_TOKEN_EXPIRED": {Message: "changed"}}
	cat := jobcast.NewCatalog(overrides)
	overrides["E_TOKEN_EXPIRED"] = jobcast.CatalogEntry{Message: "changed again"}
	if e, _ := cat.Lookup("E_TOKEN_EXPIRED"); e.Message != "changed" {
		t.Fatalf("catalog follows later changes of the override map: %q", e.Message)
	}
	// Overrides never leak into the defaults or into other catalogs.
	if e := jobcast.DefaultCatalog()["E_TOKEN_EXPIRED"]; e.Message == "changed" {
		t.Fatal("NewCatalog modified DefaultCatalog")
	}
	if e, _ := jobcast.NewCatalog(nil).Lookup("E_TOKEN_EXPIRED"); e.Message == "changed" {
		t.Fatal("override leaked into another catalog")
	}
	entries := cat.Entries()
	entries["E_TOKEN_EXPIRED"] = jobcast.CatalogEntry{Message: "mutated"}
	delete(entries, "E_INTERNAL")
	if e, _ := cat.Lookup("E_TOKEN_EXPIRED"); e.Message != "changed" {
		t.Fatal("Entries returned the catalog's own map")
	}
	if _, ok := cat.Lookup("E_INTERNAL"); !ok {
		t.Fatal("deleting from Entries removed a catalog entry")
	}
	if got, want := len(cat.Entries()), len(jobcast.DefaultCatalog()); got != want {
		t.Fatalf("len(Entries()) = %d, want %d", got, want)
	}
}
