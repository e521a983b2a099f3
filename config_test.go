package jobcast_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
)

func TestConfigWithDefaults(t *testing.T) {
	t.Parallel()
	c := jobcast.Config{}.WithDefaults()
	checks := []struct {
		name      string
		got, want any
	}{
		{"Addr", c.Addr, ":8080"},
		{"DataDir", c.DataDir, "./jobcast-data"},
		{"TokenTTL", c.TokenTTL, time.Hour},
		{"HeartbeatInterval", c.HeartbeatInterval, 30 * time.Second},
		{"PongTimeout", c.PongTimeout, 10 * time.Second},
		{"Throttle", c.Throttle, 500 * time.Millisecond},
		{"JobRetention", c.JobRetention, 7 * 24 * time.Hour},
		{"WriteTimeout", c.WriteTimeout, 10 * time.Second},
		{"HelloTimeout", c.HelloTimeout, 10 * time.Second},
		{"MaxConnsPerIP", c.MaxConnsPerIP, 5000},
		{"NewConnsPerSecPerIP", c.NewConnsPerSecPerIP, 200.0},
		{"RequestsPerSecPerIP", c.RequestsPerSecPerIP, 1000.0},
		{"MaxConnsPerJob", c.MaxConnsPerJob, 100},
		{"MaxFrameBytes", c.MaxFrameBytes, int64(64 << 10)},
		{"MaxBodyBytes", c.MaxBodyBytes, int64(1 << 20)},
		{"SendQueueLen", c.SendQueueLen, 256},
		{"MaxProtocolViolation", c.MaxProtocolViolation, 5},
		{"EffectiveThrottle", c.EffectiveThrottle(), 500 * time.Millisecond},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestConfigWithDefaultsKeepsSetFields(t *testing.T) {
	t.Parallel()
	in := jobcast.Config{
		Addr: "127.0.0.1:9000", DataDir: "/data", TokenTTL: time.Minute, HeartbeatInterval: 5 * time.Second,
		Throttle: time.Second, MaxConnsPerIP: 7, NewConnsPerSecPerIP: 1.5, MaxFrameBytes: 2048, ThrottleDisabled: true,
	}
	c := in.WithDefaults()
	if c.Addr != in.Addr || c.DataDir != in.DataDir || c.TokenTTL != time.Minute || c.HeartbeatInterval != 5*time.Second ||
		c.Throttle != time.Second || c.MaxConnsPerIP != 7 || c.NewConnsPerSecPerIP != 1.5 || c.MaxFrameBytes != 2048 {
		t.Fatalf("WithDefaults overwrote set fields: %+v", c)
	}
	if got := c.EffectiveThrottle(); got != 0 {
		t.Fatalf("EffectiveThrottle with ThrottleDisabled = %v, want 0", got)
	}
	if in.PongTimeout != 0 {
		t.Fatal("WithDefaults modified its receiver")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(c *jobcast.Config)
		want   []string // substrings of the error; nil: valid
	}{
		{name: "defaults", modify: func(c *jobcast.Config) {}},
		{name: "secret and keys long enough", modify: func(c *jobcast.Config) {
			c.JWTSecret = strings.Repeat("s", 32)
			c.APIKeys = []string{"0123456789abcdef"}
			c.Errors = map[string]jobcast.CatalogEntry{"E_QUOTA": {Message: "q"}}
			c.Throttle = 0
		}},
		{name: "negative heartbeat", modify: func(c *jobcast.Config) { c.HeartbeatInterval = -time.Second }, want: []string{"heartbeat interval must be positive, got -1s"}},
		{name: "heartbeat too short", modify: func(c *jobcast.Config) { c.HeartbeatInterval = 50 * time.Millisecond }, want: []string{"heartbeat interval 50ms is below 100ms"}},
		{name: "zero pong timeout", modify: func(c *jobcast.Config) { c.PongTimeout = 0 }, want: []string{"pong timeout must be positive, got 0s"}},
		{name: "zero token TTL", modify: func(c *jobcast.Config) { c.TokenTTL = 0 }, want: []string{"token TTL must be positive"}},
		{name: "zero retention", modify: func(c *jobcast.Config) { c.JobRetention = 0 }, want: []string{"job retention must be positive"}},
		{name: "zero write timeout", modify: func(c *jobcast.Config) { c.WriteTimeout = 0 }, want: []string{"write timeout must be positive"}},
		{name: "negative throttle", modify: func(c *jobcast.Config) { c.Throttle = -time.Millisecond }, want: []string{"throttle must be >= 0, got -1ms"}},
		{name: "tiny frames", modify: func(c *jobcast.Config) { c.MaxFrameBytes = 1023 }, want: []string{"max frame bytes must be between 1024 and 65536, got 1023"}},
		{name: "frames above the protocol cap", modify: func(c *jobcast.Config) { c.MaxFrameBytes = 65537 }, want: []string{"max frame bytes must be between 1024 and 65536, got 65537"}},
		{name: "bad trusted proxy", modify: func(c *jobcast.Config) { c.TrustedProxies = []string{"10.0.0.0/8", "proxy.local"} }, want: []string{`trusted proxy "proxy.local" is not an address or CIDR prefix`}},
		{name: "zero conns per IP", modify: func(c *jobcast.Config) { c.MaxConnsPerIP = 0 }, want: []string{"connection limits and send queue length must be >= 1"}},
		{name: "zero conns per job", modify: func(c *jobcast.Config) { c.MaxConnsPerJob = 0 }, want: []string{"connection limits and send queue length must be >= 1"}},
		{name: "zero send queue", modify: func(c *jobcast.Config) { c.SendQueueLen = 0 }, want: []string{"connection limits and send queue length must be >= 1"}},
		{name: "zero rate", modify: func(c *jobcast.Config) { c.NewConnsPerSecPerIP = 0 }, want: []string{"rate limits must be > 0"}},
		{name: "negative request rate", modify: func(c *jobcast.Config) { c.RequestsPerSecPerIP = -1 }, want: []string{"rate limits must be > 0"}},
		{name: "short JWT secret", modify: func(c *jobcast.Config) { c.JWTSecret = strings.Repeat("s", 31) }, want: []string{"JWT secret must be at least 32 bytes"}},
		{name: "short API key", modify: func(c *jobcast.Config) { c.APIKeys = []string{"0123456789abcdef", "short"} }, want: []string{"API keys must be at least 16 characters"}},
		{name: "bad catalog code", modify: func(c *jobcast.Config) { c.Errors = map[string]jobcast.CatalogEntry{"TIMEOUT": {}} }, want: []string{`error catalog code "TIMEOUT" must start with E_`}},
		{name: "bare catalog prefix", modify: func(c *jobcast.Config) { c.Errors = map[string]jobcast.CatalogEntry{"E_": {}} }, want: []string{`error catalog code "E_" must start with E_`}},
		{name: "every error is reported", modify: func(c *jobcast.Config) {
			c.PongTimeout = -1
			c.MaxFrameBytes = 10
			c.JWTSecret = "short"
		}, want: []string{"pong timeout must be positive", "max frame bytes must be between 1024 and 65536, got 10", "JWT secret must be at least 32 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := jobcast.Config{}.WithDefaults()
			tt.modify(&c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want errors %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %q, want it to contain %q", err, w)
				}
			}
			if got := strings.Count(err.Error(), "\n") + 1; got != len(tt.want) {
				t.Errorf("Validate reported %d errors (%q), want %d", got, err, len(tt.want))
			}
		})
	}
}
