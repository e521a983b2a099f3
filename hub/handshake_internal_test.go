package hub

import (
	"net/url"
	"testing"
)

// queryGet must answer as url.Values.Get of the parsed query.
func TestQueryGet(t *testing.T) {
	t.Parallel()
	raws := []string{
		"", "jobId=j1", "jobId=j1&jobId=j2", "token=a%2Bb&jobId=x", "jobId=a+b",
		"job%49d=j3", "jobId=%zz&jobId=ok", "%zz=1&jobId=j", "a;b=1&jobId=j", "jobId=j;x",
		"&&jobId=&jobId=j", "jobId", "jobId&jobId=j", "lastSeq=12&appVersion=1.2.3", "jobId=caf%C3%A9",
		"jobId==j", "jobid=lower",
	}
	for _, raw := range raws {
		want, _ := url.ParseQuery(raw)
		for _, key := range []string{"jobId", "token", "lastSeq", "appVersion"} {
			if got := queryGet(raw, key); got != want.Get(key) {
				t.Errorf("queryGet(%q, %q) = %q, want %q", raw, key, got, want.Get(key))
			}
		}
	}
}

func TestValidChallengeKey(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]bool{
		"dGhlIHNhbXBsZSBub25jZQ==": true,
		"":                         false,
		"dGhlIHNhbXBsZSBub25jZQ":   false, // no padding
		"dGhlIHNhbXBsZSBub25jZQ=!": false,
		"AAAAAAAAAAAAAAAAAAAAAA==": true,
		"AAAAAAAAAAAAAAAAAAAAAAAA": false, // 18 bytes
	} {
		if got := validChallengeKey(key); got != want {
			t.Errorf("validChallengeKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func BenchmarkHandshakeResponse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !validChallengeKey("dGhlIHNhbXBsZSBub25jZQ==") {
			b.Fatal("invalid key")
		}
		_ = handshakeResponse("dGhlIHNhbXBsZSBub25jZQ==", true)
	}
}
