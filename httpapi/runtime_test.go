package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/jobcast/jobcast/httpapi"
	"github.com/jobcast/jobcast/internal/jobcasttest"
)

func TestRuntimeStats(t *testing.T) {
	t.Parallel()
	srv := jobcasttest.Start(t, jobcasttest.Options{})
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"admin", jobcasttest.AdminToken, http.StatusOK},
		{"producer key is not admin", jobcasttest.APIKey, http.StatusUnauthorized},
		{"no token", "", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/debug/runtime?gc=1", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want != http.StatusOK {
				return
			}
			var st httpapi.RuntimeStats
			if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
				t.Fatal(err)
			}
			if st.HeapInuseBytes == 0 || st.HeapAllocBytes == 0 || st.Goroutines == 0 || st.NumGC == 0 || st.Mallocs == 0 || st.StackInuseBytes == 0 || st.SysBytes == 0 {
				t.Fatalf("implausible stats after GC: %+v", st)
			}
		})
	}
}
