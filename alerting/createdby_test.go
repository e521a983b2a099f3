package alerting

import (
	"net/http/httptest"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
)

// TestCreatedBy: a signed-in user's name is what a silence records, whatever
// the body claims; the shared admin token and unauthenticated calls keep the
// body's value.
func TestCreatedBy(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		principal *auth.Principal
		claimed   string
		want      string
	}{
		{"user overrides the claim", &auth.Principal{Name: "alice", Role: jobcast.RoleAdmin}, "bob", "alice"},
		{"user without a claim", &auth.Principal{Name: "alice", Role: jobcast.RoleAdmin}, "", "alice"},
		{"admin token keeps the claim", &auth.Principal{Name: jobcast.AdminName, Role: jobcast.RoleAdmin}, "oncall-carol", "oncall-carol"},
		{"no auth check keeps the claim", nil, "test", "test"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("POST", "/v1/alerts/silences", nil)
			if tc.principal != nil {
				r = r.WithContext(auth.WithPrincipal(r.Context(), *tc.principal))
			}
			if got := createdBy(r, tc.claimed); got != tc.want {
				t.Errorf("createdBy = %q, want %q", got, tc.want)
			}
		})
	}
}
