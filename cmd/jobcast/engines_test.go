package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/jobcast/jobcast"
)

// TestEngineURLs: a URL the factory cannot use is refused with a message
// that says what to write instead, before anything is opened.
func TestEngineURLs(t *testing.T) {
	t.Parallel()
	cfg := jobcast.Config{DataDir: t.TempDir()}.WithDefaults()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tt := range []struct {
		urls engineURLs
		want string
	}{
		{engineURLs{NATS: "http://127.0.0.1:4222"}, `unknown scheme "http": use nats://host:4222`},
		{engineURLs{NATS: "://"}, "NATS URL"},
		{engineURLs{ClickHouse: "http://127.0.0.1:8123"}, "HTTP interface is not supported; use the native protocol, clickhouse://"},
		{engineURLs{ClickHouse: "https://ch.example:8443"}, "HTTP interface is not supported"},
		{engineURLs{ClickHouse: "postgres://x"}, `unknown scheme "postgres"`},
	} {
		var err error
		if tt.urls.NATS != "" {
			_, err = openJobEngines(context.Background(), cfg, tt.urls, log)
		} else {
			_, err = openTelemetry(context.Background(), cfg, tt.urls, log)
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: error %v, want one containing %q", tt.urls, err, tt.want)
		}
	}
}

// TestClusterNeedsSharedSecrets: a cluster node without a configured JWT
// secret or API keys would generate its own, which other nodes reject.
func TestClusterNeedsSharedSecrets(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cfg  jobcast.Config
		want string
	}{
		{jobcast.Config{}, ""},
		{jobcast.Config{NATSURL: "nats://127.0.0.1:4222", APIKeys: []string{"k"}}, "JOBCAST_JWT_SECRET"},
		{jobcast.Config{NATSURL: "nats://127.0.0.1:4222", JWTSecret: "s"}, "JOBCAST_API_KEYS"},
		{jobcast.Config{NATSURL: "nats://127.0.0.1:4222", JWTSecret: "s", APIKeys: []string{"k"}}, ""},
	} {
		err := checkCluster(tt.cfg)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("checkCluster(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
}
