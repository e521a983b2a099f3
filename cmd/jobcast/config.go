package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jobcast/jobcast"
)

// envLookup abstracts os.LookupEnv so tests can pass an environment.
type envLookup func(string) (string, bool)

// serveFlags are the flags of serve and demo; each maps onto a Config field.
type serveFlags struct {
	fs         *flag.FlagSet
	configPath string
	addr       string
	dataDir    string
	publicURL  string
	apiKeys    string
	heartbeat  time.Duration
	pongTO     time.Duration
	throttle   time.Duration
	tokenTTL   time.Duration
	logLevel   string
	alertsFile string
	expFile    string
	natsURL    string
	clickhouse string
}

func newServeFlags(name string) *serveFlags {
	f := &serveFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.fs.StringVar(&f.configPath, "config", "", "YAML config file (env JOBCAST_CONFIG)")
	f.fs.StringVar(&f.addr, "addr", "", "listen address (env JOBCAST_ADDR, default :8080)")
	f.fs.StringVar(&f.dataDir, "data-dir", "", "data directory (env JOBCAST_DATA_DIR, default ./jobcast-data)")
	f.fs.StringVar(&f.publicURL, "public-url", "", "base URL clients reach this node at (env JOBCAST_PUBLIC_URL)")
	f.fs.StringVar(&f.apiKeys, "api-keys", "", "comma-separated producer API keys (env JOBCAST_API_KEYS)")
	f.fs.DurationVar(&f.heartbeat, "heartbeat-interval", 0, "server ping interval (env JOBCAST_HEARTBEAT_INTERVAL_MS, default 30s)")
	f.fs.DurationVar(&f.pongTO, "pong-timeout", 0, "close a connection whose pong is this late (env JOBCAST_PONG_TIMEOUT_MS, default 10s)")
	f.fs.DurationVar(&f.throttle, "throttle", 0, "min gap between progress frames per connection; 0s disables (env JOBCAST_THROTTLE_MS, default 500ms)")
	f.fs.DurationVar(&f.tokenTTL, "token-ttl", 0, "client token lifetime (env JOBCAST_TOKEN_TTL, default 1h)")
	f.fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (env JOBCAST_LOG_LEVEL, default info)")
	f.fs.StringVar(&f.alertsFile, "alerts-config", "", "alert rules and receivers YAML, reloaded on change (env JOBCAST_ALERTS_CONFIG, default DATA_DIR/alerts.yaml if present)")
	f.fs.StringVar(&f.natsURL, "nats", "", "cluster mode: job state, logs and fan-out on NATS JetStream, nats://host:4222 (env JOBCAST_NATS_URL; default SQLite in the data dir)")
	f.fs.StringVar(&f.clickhouse, "clickhouse", "", "cluster mode: telemetry in ClickHouse, clickhouse://host:9000/database (env JOBCAST_CLICKHOUSE_URL; default DuckDB in the data dir)")
	f.fs.StringVar(&f.expFile, "experiments", "", "YAML file of experiments applied at start (env JOBCAST_EXPERIMENTS_FILE, default DATA_DIR/experiments.yaml if present)")
	return f
}

// load builds the config: defaults, then the file, then env, then flags.
func (f *serveFlags) load(env envLookup) (jobcast.Config, string, error) {
	var cfg jobcast.Config
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })

	path := f.configPath
	if !set["config"] {
		if v, ok := env("JOBCAST_CONFIG"); ok {
			path = v
		}
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, "", fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, "", fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, env); err != nil {
		return cfg, "", err
	}
	level := ""
	if v, ok := env("JOBCAST_LOG_LEVEL"); ok {
		level = v
	}
	if set["addr"] {
		cfg.Addr = f.addr
	}
	if set["data-dir"] {
		cfg.DataDir = f.dataDir
	}
	if set["public-url"] {
		cfg.PublicURL = f.publicURL
	}
	if set["api-keys"] {
		cfg.APIKeys = splitList(f.apiKeys)
	}
	if set["heartbeat-interval"] {
		cfg.HeartbeatInterval = f.heartbeat
	}
	if set["pong-timeout"] {
		cfg.PongTimeout = f.pongTO
	}
	if set["throttle"] {
		cfg.Throttle, cfg.ThrottleDisabled = f.throttle, f.throttle == 0
	}
	if set["token-ttl"] {
		cfg.TokenTTL = f.tokenTTL
	}
	if set["experiments"] {
		cfg.ExperimentsFile = f.expFile
	}
	if set["nats"] {
		cfg.NATSURL = f.natsURL
	}
	if set["clickhouse"] {
		cfg.ClickHouseURL = f.clickhouse
	}
	if set["log-level"] {
		level = f.logLevel
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return cfg, "", fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, level, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// applyEnv maps the JOBCAST_* variables onto cfg.
func applyEnv(cfg *jobcast.Config, env envLookup) error {
	str := func(name string, dst *string) {
		if v, ok := env(name); ok && v != "" {
			*dst = v
		}
	}
	str("JOBCAST_ADDR", &cfg.Addr)
	str("JOBCAST_DATA_DIR", &cfg.DataDir)
	str("JOBCAST_PUBLIC_URL", &cfg.PublicURL)
	str("JOBCAST_NODE_ID", &cfg.NodeID)
	str("JOBCAST_ADMIN_TOKEN", &cfg.AdminToken)
	str("JOBCAST_JWT_SECRET", &cfg.JWTSecret)
	str("JOBCAST_EXPERIMENTS_FILE", &cfg.ExperimentsFile)
	str("JOBCAST_NATS_URL", &cfg.NATSURL)
	str("JOBCAST_CLICKHOUSE_URL", &cfg.ClickHouseURL)
	if v, ok := env("JOBCAST_API_KEYS"); ok && v != "" {
		cfg.APIKeys = splitList(v)
	}
	if v, ok := env("JOBCAST_ALLOWED_ORIGINS"); ok && v != "" {
		cfg.AllowedOrigins = splitList(v)
	}
	if v, ok := env("JOBCAST_TRUSTED_PROXIES"); ok && v != "" {
		cfg.TrustedProxies = splitList(v)
	}
	millis := func(name string, dst *time.Duration) (bool, error) {
		v, ok := env(name)
		if !ok || v == "" {
			return false, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return false, fmt.Errorf("%s must be a whole number of milliseconds, got %q", name, v)
		}
		*dst = time.Duration(n) * time.Millisecond
		return true, nil
	}
	for name, dst := range map[string]*time.Duration{
		"JOBCAST_HEARTBEAT_INTERVAL_MS": &cfg.HeartbeatInterval,
		"JOBCAST_PONG_TIMEOUT_MS":       &cfg.PongTimeout,
	} {
		if ok, err := millis(name, dst); err != nil {
			return err
		} else if ok && *dst == 0 {
			return fmt.Errorf("%s must be at least 1 millisecond (unset it for the default)", name)
		}
	}
	if ok, err := millis("JOBCAST_THROTTLE_MS", &cfg.Throttle); err != nil {
		return err
	} else if ok {
		cfg.ThrottleDisabled = cfg.Throttle == 0
	}
	dur := func(name string, dst *time.Duration) error {
		v, ok := env(name)
		if !ok || v == "" {
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%s must be a duration such as 15m or 1h, got %q", name, v)
		}
		*dst = d
		return nil
	}
	if err := dur("JOBCAST_TOKEN_TTL", &cfg.TokenTTL); err != nil {
		return err
	}
	if err := dur("JOBCAST_JOB_RETENTION", &cfg.JobRetention); err != nil {
		return err
	}
	if err := dur("JOBCAST_SHUTDOWN_DELAY", &cfg.ShutdownDelay); err != nil {
		return err
	}
	if err := dur("JOBCAST_TELEMETRY_RETENTION", &cfg.TelemetryRetention); err != nil {
		return err
	}
	ints := func(name string, dst *int) error {
		v, ok := env(name)
		if !ok || v == "" {
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("%s must be a positive whole number, got %q", name, v)
		}
		*dst = n
		return nil
	}
	if err := ints("JOBCAST_HEARTBEAT_SAMPLE", &cfg.HeartbeatSampleInterval); err != nil {
		return err
	}
	if err := ints("JOBCAST_TELEMETRY_BUFFER", &cfg.TelemetryBuffer); err != nil {
		return err
	}
	if err := ints("JOBCAST_MAX_CONNS_PER_IP", &cfg.MaxConnsPerIP); err != nil {
		return err
	}
	if v, ok := env("JOBCAST_PRODUCER_EVENTS_PER_SEC_PER_KEY"); ok && v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("JOBCAST_PRODUCER_EVENTS_PER_SEC_PER_KEY must be a number of events per second (negative: no limit), got %q", v)
		}
		cfg.ProducerEventsPerSecPerKey = f
	}
	return ints("JOBCAST_MAX_CONNS_PER_JOB", &cfg.MaxConnsPerJob)
}
