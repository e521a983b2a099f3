package httputil_test

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"

	"go.uber.org/goleak"

	"github.com/jobcast/jobcast/internal/httputil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestProxyTrustClientIP(t *testing.T) {
	t.Parallel()
	trust, err := httputil.ParseProxyTrust([]string{"10.0.0.0/8", "127.0.0.1", " ::1 "})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		peer   string
		xff    []string
		want   string
		scheme string
		proto  string
	}{
		{name: "direct client", peer: "203.0.113.7:5000", want: "203.0.113.7"},
		{name: "untrusted peer's XFF is ignored", peer: "203.0.113.7:5000", xff: []string{"1.2.3.4"}, want: "203.0.113.7"},
		{name: "trusted proxy", peer: "10.1.2.3:443", xff: []string{"198.51.100.9"}, want: "198.51.100.9"},
		{name: "chain of trusted proxies", peer: "127.0.0.1:1", xff: []string{"198.51.100.9, 10.0.0.5"}, want: "198.51.100.9"},
		{name: "client-supplied spoof left of the real hop", peer: "10.1.2.3:443", xff: []string{"6.6.6.6, 198.51.100.9"}, want: "198.51.100.9"},
		{name: "several header lines", peer: "10.1.2.3:443", xff: []string{"6.6.6.6", "198.51.100.9"}, want: "198.51.100.9"},
		{name: "only proxies", peer: "10.1.2.3:443", xff: []string{"10.0.0.9"}, want: "10.0.0.9"},
		{name: "malformed hop", peer: "10.1.2.3:443", xff: []string{"198.51.100.9, not-an-ip"}, want: "10.1.2.3"},
		{name: "trusted proxy without XFF", peer: "10.1.2.3:443", want: "10.1.2.3"},
		{name: "IPv6 proxy", peer: "[::1]:80", xff: []string{"2001:db8::5"}, want: "2001:db8::5"},
		{name: "https from trusted proxy", peer: "10.1.2.3:443", proto: "https", want: "10.1.2.3", scheme: "https"},
		{name: "https claim from untrusted peer", peer: "203.0.113.7:5000", proto: "https", want: "203.0.113.7", scheme: "http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if tt.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tt.proto)
			}
			if got := trust.ClientIP(r); got != tt.want {
				t.Errorf("ClientIP = %q, want %q", got, tt.want)
			}
			want := tt.scheme
			if want == "" {
				want = "http"
			}
			if got := trust.Scheme(r); got != want {
				t.Errorf("Scheme = %q, want %q", got, want)
			}
		})
	}
}

func TestProxyTrustNoneAndTLS(t *testing.T) {
	t.Parallel()
	none, err := httputil.ParseProxyTrust(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:9"
	r.Header.Set("X-Forwarded-For", "1.2.3.4")
	r.Header.Set("X-Forwarded-Proto", "https")
	if got := none.ClientIP(r); got != "127.0.0.1" {
		t.Errorf("no trusted proxies: ClientIP = %q", got)
	}
	if got := none.Scheme(r); got != "http" {
		t.Errorf("no trusted proxies: Scheme = %q", got)
	}
	r.TLS = &tls.ConnectionState{}
	if got := none.Scheme(r); got != "https" {
		t.Errorf("TLS request: Scheme = %q", got)
	}
}

func TestParseProxyTrustErrors(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0"} {
		if _, err := httputil.ParseProxyTrust([]string{bad}); err == nil {
			t.Errorf("ParseProxyTrust(%q) accepted", bad)
		}
	}
}
