package jobcast

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/jobcast/jobcast/protocol"
)

// Config is the whole server configuration. Flags, environment variables and
// the YAML file all map onto it (cmd/jobcast); a zero field means "use the
// default" and WithDefaults fills it in.
type Config struct {
	// Addr is the listen address (JOBCAST_ADDR, default ":8080").
	Addr string `yaml:"addr"`
	// DataDir holds the SQLite database, generated keys and, later, the
	// telemetry store (JOBCAST_DATA_DIR, default "./jobcast-data").
	DataDir string `yaml:"dataDir"`
	// PublicURL is the base URL clients reach this server at; it builds the
	// websocketUrl of new jobs. Empty: derived from each request.
	PublicURL string `yaml:"publicUrl"`
	// NodeID names this node in logs and telemetry (default: host name).
	NodeID string `yaml:"nodeId"`
	// NATSURL, when set, keeps job state and message logs in NATS JetStream
	// and fans messages out between nodes over NATS (JOBCAST_NATS_URL,
	// nats://host:4222): cluster mode (docs/cluster.md). Empty: SQLite in
	// the data dir and in-process fan-out.
	NATSURL string `yaml:"natsUrl"`
	// ClickHouseURL, when set, stores telemetry in ClickHouse
	// (JOBCAST_CLICKHOUSE_URL, clickhouse://host:9000/database: the native
	// protocol). Empty: DuckDB in the data dir.
	ClickHouseURL string `yaml:"clickhouseUrl"`

	// APIKeys are the producer keys (JOBCAST_API_KEYS). When empty, the
	// first start generates one into the data dir and prints it once.
	APIKeys []string `yaml:"apiKeys"`
	// AdminToken guards admin surfaces (JOBCAST_ADMIN_TOKEN). When empty, one
	// is generated into the data dir.
	AdminToken string `yaml:"adminToken"`
	// JWTSecret signs client tokens (JOBCAST_JWT_SECRET). When empty, a key
	// ring is generated into the data dir.
	JWTSecret string `yaml:"jwtSecret"`
	// TokenTTL is the lifetime of client tokens (JOBCAST_TOKEN_TTL, default 1h).
	TokenTTL time.Duration `yaml:"tokenTTL"`

	// HeartbeatInterval between server pings (JOBCAST_HEARTBEAT_INTERVAL_MS,
	// default 30s).
	HeartbeatInterval time.Duration `yaml:"heartbeatInterval"`
	// PongTimeout closes a connection with 4008 when a ping goes unanswered
	// this long (JOBCAST_PONG_TIMEOUT_MS, default 10s).
	PongTimeout time.Duration `yaml:"pongTimeout"`
	// Throttle is the minimum gap between progress frames per job and
	// connection (JOBCAST_THROTTLE_MS, default 500ms; 0 after defaults
	// means "no throttling" only when set via ThrottleDisabled).
	Throttle time.Duration `yaml:"throttle"`
	// ThrottleDisabled sends every progress frame (benchmarks only).
	ThrottleDisabled bool `yaml:"throttleDisabled"`

	// JobRetention keeps finished jobs and their message logs this long
	// (default 7 days); resuming clients are served within it.
	JobRetention time.Duration `yaml:"jobRetention"`

	// Limits. Defaults suit carrier-grade NAT, where thousands of phones share
	// one address.
	MaxConnsPerIP        int           `yaml:"maxConnsPerIP"`        // default 5000
	NewConnsPerSecPerIP  float64       `yaml:"newConnsPerSecPerIP"`  // default 200
	RequestsPerSecPerIP  float64       `yaml:"requestsPerSecPerIP"`  // default 1000
	MaxConnsPerJob       int           `yaml:"maxConnsPerJob"`       // default 100
	MaxFrameBytes        int64         `yaml:"maxFrameBytes"`        // default 64 KiB
	MaxBodyBytes         int64         `yaml:"maxBodyBytes"`         // default 1 MiB
	SendQueueLen         int           `yaml:"sendQueueLen"`         // default 256 frames
	MaxProtocolViolation int           `yaml:"maxProtocolViolation"` // default 5
	WriteTimeout         time.Duration `yaml:"writeTimeout"`         // default 10s
	HelloTimeout         time.Duration `yaml:"helloTimeout"`         // default 10s
	// ProducerEventsPerSecPerKey limits the producer events one API key
	// may post to this node, counted in events (a batch of 100 is 100, a
	// new job 1), with a burst of twice the rate
	// (JOBCAST_PRODUCER_EVENTS_PER_SEC_PER_KEY, default 100,000: the
	// throttled load scenario's 40,000/s from one key fits with room).
	// Zero means the default, as for every limit; a negative value turns
	// the limit off.
	ProducerEventsPerSecPerKey float64 `yaml:"producerEventsPerSecPerKey"`
	// SpoolMaxWrites and SpoolMaxBytes bound the job writes an embedded
	// node holds in memory while its disk refuses them (full, read-only),
	// delivering them meanwhile (default 10,000 writes, 64 MiB); beyond
	// them producers get 503 E_UNAVAILABLE (docs/security.md section 4).
	SpoolMaxWrites int   `yaml:"spoolMaxWrites"`
	SpoolMaxBytes  int64 `yaml:"spoolMaxBytes"`
	// TrustedProxies lists the reverse proxies (addresses or CIDR
	// prefixes) whose X-Forwarded-For and X-Forwarded-Proto are believed
	// (JOBCAST_TRUSTED_PROXIES). Empty: none; per-IP limits then count the
	// proxy's own address.
	TrustedProxies []string `yaml:"trustedProxies"`
	// AllowedOrigins lists the browser origins allowed to open WebSockets;
	// empty allows any (tokens are not ambient credentials).
	AllowedOrigins []string `yaml:"allowedOrigins"`

	// ShutdownDelay is how long a stopping node keeps serving with /readyz
	// failing, before it drains producers and closes clients with 1001, so
	// that a load balancer stops routing to it first (JOBCAST_SHUTDOWN_DELAY,
	// default 0).
	ShutdownDelay time.Duration `yaml:"shutdownDelay"`

	// HeartbeatSampleInterval records one heartbeat telemetry event in this
	// many, weighted by it in every metric (JOBCAST_HEARTBEAT_SAMPLE,
	// default 1: all).
	HeartbeatSampleInterval int `yaml:"heartbeatSampleInterval"`
	// TelemetryRetention keeps telemetry events this long (default 30 days).
	TelemetryRetention time.Duration `yaml:"telemetryRetention"`
	// TelemetryBuffer is the recorder's ring size in events (default
	// 131072, above one DuckDB row group so a backlog is written in whole
	// row groups, the cheapest way into DuckDB); events beyond it are
	// dropped and counted, never waited for.
	TelemetryBuffer int `yaml:"telemetryBuffer"`

	// ExperimentsFile is a YAML file of experiments applied at start
	// (JOBCAST_EXPERIMENTS_FILE; default DATA_DIR/experiments.yaml when it
	// exists); see docs/experiments.md.
	ExperimentsFile string `yaml:"experimentsFile"`

	// Errors overrides or extends the error catalog.
	Errors map[string]CatalogEntry `yaml:"errors"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	if c.DataDir == "" {
		c.DataDir = "./jobcast-data"
	}
	setDur(&c.TokenTTL, time.Hour)
	setDur(&c.HeartbeatInterval, 30*time.Second)
	setDur(&c.PongTimeout, 10*time.Second)
	setDur(&c.Throttle, 500*time.Millisecond)
	setDur(&c.JobRetention, 7*24*time.Hour)
	setDur(&c.WriteTimeout, 10*time.Second)
	setDur(&c.HelloTimeout, 10*time.Second)
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = 5000
	}
	if c.NewConnsPerSecPerIP == 0 {
		c.NewConnsPerSecPerIP = 200
	}
	if c.RequestsPerSecPerIP == 0 {
		c.RequestsPerSecPerIP = 1000
	}
	if c.ProducerEventsPerSecPerKey == 0 {
		c.ProducerEventsPerSecPerKey = 100000
	}
	if c.SpoolMaxWrites == 0 {
		c.SpoolMaxWrites = 10000
	}
	if c.SpoolMaxBytes == 0 {
		c.SpoolMaxBytes = 64 << 20
	}
	if c.MaxConnsPerJob == 0 {
		c.MaxConnsPerJob = 100
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = 64 << 10
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.SendQueueLen == 0 {
		c.SendQueueLen = 256
	}
	if c.HeartbeatSampleInterval == 0 {
		c.HeartbeatSampleInterval = 1
	}
	setDur(&c.TelemetryRetention, 30*24*time.Hour)
	if c.TelemetryBuffer == 0 {
		c.TelemetryBuffer = 131072
	}
	if c.MaxProtocolViolation == 0 {
		c.MaxProtocolViolation = 5
	}
	return c
}

// Validate reports the first invalid setting, in terms an operator can act on.
func (c *Config) Validate() error {
	var errs []error
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	positive("heartbeat interval", c.HeartbeatInterval)
	positive("pong timeout", c.PongTimeout)
	positive("token TTL", c.TokenTTL)
	positive("job retention", c.JobRetention)
	positive("write timeout", c.WriteTimeout)
	if c.HeartbeatSampleInterval < 1 || c.TelemetryBuffer < 1 {
		errs = append(errs, errors.New("heartbeat sample interval and telemetry buffer must be >= 1"))
	}
	positive("telemetry retention", c.TelemetryRetention)
	if c.ShutdownDelay < 0 {
		errs = append(errs, fmt.Errorf("shutdown delay must be >= 0, got %s", c.ShutdownDelay))
	}
	if c.Throttle < 0 {
		errs = append(errs, fmt.Errorf("throttle must be >= 0, got %s", c.Throttle))
	}
	if c.HeartbeatInterval > 0 && c.HeartbeatInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("heartbeat interval %s is below 100ms", c.HeartbeatInterval))
	}
	if c.MaxFrameBytes < 1024 || c.MaxFrameBytes > protocol.MaxFrameBytes {
		// Client frames are small (hello, pong); the protocol caps them.
		errs = append(errs, fmt.Errorf("max frame bytes must be between 1024 and %d, got %d", protocol.MaxFrameBytes, c.MaxFrameBytes))
	}
	if c.MaxConnsPerIP < 1 || c.MaxConnsPerJob < 1 || c.SendQueueLen < 1 {
		errs = append(errs, errors.New("connection limits and send queue length must be >= 1"))
	}
	if c.NewConnsPerSecPerIP <= 0 || c.RequestsPerSecPerIP <= 0 {
		errs = append(errs, errors.New("rate limits must be > 0"))
	}
	if c.SpoolMaxWrites < 1 || c.SpoolMaxBytes < 1 {
		errs = append(errs, errors.New("spool max writes and bytes must be >= 1"))
	}
	if math.IsNaN(c.ProducerEventsPerSecPerKey) || math.IsInf(c.ProducerEventsPerSecPerKey, 0) {
		errs = append(errs, errors.New("producer events per second per key must be a number (negative: no limit)"))
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		errs = append(errs, errors.New("JWT secret must be at least 32 bytes"))
	}
	for _, k := range c.APIKeys {
		if len(k) < 16 {
			errs = append(errs, errors.New("API keys must be at least 16 characters"))
			break
		}
	}
	for _, p := range c.TrustedProxies {
		if !validProxy(p) {
			errs = append(errs, fmt.Errorf("trusted proxy %q is not an address or CIDR prefix", p))
		}
	}
	for code := range c.Errors {
		if len(code) < 3 || code[:2] != "E_" {
			errs = append(errs, fmt.Errorf("error catalog code %q must start with E_", code))
		}
	}
	return errors.Join(errs...)
}

func validProxy(s string) bool {
	if strings.Contains(s, "/") {
		_, err := netip.ParsePrefix(s)
		return err == nil
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}

// EffectiveThrottle is the progress throttle window in force: zero when
// throttling is disabled.
func (c *Config) EffectiveThrottle() time.Duration {
	if c.ThrottleDisabled {
		return 0
	}
	return c.Throttle
}
