package bench_test

import (
	"fmt"
	"os"
	"testing"
)

// TestMain lets the test binary double as the client process of the
// multi-process benchmarks: with JOBCAST_BENCH_ROLE=clients it runs
// clientProcessMain instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == roleClients {
		if err := clientProcessMain(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stdout, "error", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
