// Package chtest gives tests a ClickHouse server to use: the one named by
// JOBCAST_TEST_CLICKHOUSE_URL (CI starts one, see .ci/run). Without it a
// test skips, unless JOBCAST_REQUIRE_INTEGRATION is set (CI sets it), in
// which case it fails: CI must never pass with the ClickHouse tests
// skipped.
package chtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// EnvURL names the server, as a native-protocol DSN
// (clickhouse://127.0.0.1:19000).
const EnvURL = "JOBCAST_TEST_CLICKHOUSE_URL"

// EnvRequire, when non-empty, turns a missing server into a failure.
const EnvRequire = "JOBCAST_REQUIRE_INTEGRATION"

var n atomic.Int64

// URL returns the server's DSN with a new database name, dropped when the
// test ends, so each test starts on an empty store.
func URL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		if os.Getenv(EnvRequire) != "" {
			t.Fatalf("%s is set but %s is not: the ClickHouse tests are required", EnvRequire, EnvURL)
		}
		t.Skipf("no ClickHouse server: set %s (e.g. clickhouse://127.0.0.1:19000) to run this test", EnvURL)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvURL, err)
	}
	db := fmt.Sprintf("jobcast_test_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6, n.Add(1))
	u.Path = "/" + db
	t.Cleanup(func() {
		opt, err := ch.ParseDSN(base)
		if err != nil {
			return
		}
		conn, err := ch.Open(opt)
		if err != nil {
			t.Errorf("drop test database: %v", err)
			return
		}
		defer conn.Close()
		if err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("drop test database %s: %v", db, err)
		}
	})
	return u.String()
}
