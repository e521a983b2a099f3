package httpapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/jobcast/jobcast/internal/jobcasttest"
)

func TestPprofNeedsAdmin(t *testing.T) {
	t.Parallel()
	srv := jobcasttest.Start(t, jobcasttest.Options{})
	tests := []struct {
		name, path, token string
		want              int
		body              string
	}{
		{"index", "/debug/pprof/", jobcasttest.AdminToken, http.StatusOK, "goroutine"},
		{"heap", "/debug/pprof/heap?debug=1", jobcasttest.AdminToken, http.StatusOK, "heap profile"},
		{"cpu, briefly", "/debug/pprof/profile?seconds=1", jobcasttest.AdminToken, http.StatusOK, ""},
		{"producer key is not admin", "/debug/pprof/heap", jobcasttest.APIKey, http.StatusUnauthorized, ""},
		{"no token", "/debug/pprof/", "", http.StatusUnauthorized, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(http.MethodGet, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want || !strings.Contains(string(body), tt.body) {
				t.Fatalf("status %d, want %d; body %.200s", resp.StatusCode, tt.want, body)
			}
		})
	}
}
