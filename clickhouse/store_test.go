package clickhouse_test

import (
	"context"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/clickhouse"
	"github.com/jobcast/jobcast/clickhouse/chtest"
	"github.com/jobcast/jobcast/internal/telemetrytest"
)

func open(t *testing.T) *clickhouse.Store {
	t.Helper()
	s, err := clickhouse.Open(context.Background(), clickhouse.Config{URL: chtest.URL(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestStore(t *testing.T) {
	t.Parallel()
	telemetrytest.RunStoreTests(t, func(t *testing.T) jobcast.TelemetryStore { return open(t) })
}
