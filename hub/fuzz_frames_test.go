package hub

import (
	"encoding/json"
	"testing"

	"github.com/jobcast/jobcast/protocol"
)

// FuzzClientFrame checks the pong fast path against the general decoder on
// any bytes a client can send: a frame the fast path accepts must be one the
// decoder accepts as a pong with the same serverTime (so the fast path lets
// nothing through that the decoder would refuse), and neither may panic.
func FuzzClientFrame(f *testing.F) {
	for _, s := range []string{
		`{"v":2,"type":"pong","ts":1764133200123,"payload":{"serverTime":1764133200000}}`,
		`{"v":2,"type":"pong","ts":0,"payload":{"serverTime":0}}`,
		`{"v":2,"type":"pong","ts":01,"payload":{"serverTime":1}}`,
		`{"v":2,"type":"pong","ts":1,"payload":{"serverTime":1234567890123456789}}`,
		`{"v":2,"type":"pong","ts":1,"payload":{"serverTime":1}}}`,
		`{"v":2,"type":"pong","payload":{"serverTime":5}}`,
		`{"v":2,"type":"ping","ts":1,"payload":{"clientTime":3}}`,
		`{"v":2,"type":"hello","payload":{"appVersion":"3.4.0","networkType":"cellular"}}`,
		`{"v":3,"type":"pong"}`,
		`[]`, `null`, ``, `{"type":"pong"} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := parseCanonicalPong(data)
		env, err := protocol.DecodeClientFrame(data)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("fast path accepted %q, the decoder refused it: %v", data, err)
		}
		if env.Type != protocol.TypePong {
			t.Fatalf("fast path accepted %q as a pong, the decoder saw %q", data, env.Type)
		}
		var p protocol.Pong
		if err := json.Unmarshal(env.Payload, &p); err != nil || p.ServerTime != fast {
			t.Fatalf("fast path read serverTime %d from %q, the decoder %d (%v)", fast, data, p.ServerTime, err)
		}
	})
}
