package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExperimentsCLI runs a server whose data dir has an experiments file,
// and drives its experiments with the CLI: list, create, update, start,
// stop and results.
func TestExperimentsCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "experiments.yaml"), []byte(`experiments:
  - id: heartbeat-cellular-v1
    parameter: heartbeat_interval_ms
    control: 30000
    variant: 45000
    segment: {networkType: cellular, appVersion: ">=3.4"}
    status: running
`), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, _ := runMain(t, []string{"serve", "-addr", "127.0.0.1:0", "-data-dir", dir},
		map[string]string{"JOBCAST_API_KEYS": "experiments-cli-key-0123456789"})
	base := stdout.waitFor(t, servingRE)[1]
	cli := func(args ...string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		full := append([]string{args[0], args[1], "-server", base, "-data-dir", dir}, args[2:]...)
		code := Main(context.Background(), full, mapEnv(nil), &out, &errOut)
		if code != 0 {
			return out.String(), &cliError{errOut.String()}
		}
		return out.String(), nil
	}
	out, err := cli("experiments", "list")
	if err != nil || !strings.Contains(out, "heartbeat-cellular-v1") || !strings.Contains(out, "running") ||
		!strings.Contains(out, "control=30000 (50%)") {
		t.Fatalf("list: %v\n%s\nserver: %s", err, out, stderr.String())
	}
	if _, err := cli("experiments", "create", `{"id":"throttle-wifi","parameter":"throttle_ms","control":500,"variant":250,"segment":{"networkType":"wifi"}}`); err != nil {
		t.Fatalf("create: %v", err)
	}
	if out, err := cli("experiments", "update", "throttle-wifi", `{"coverage":0.25}`); err != nil || !strings.Contains(out, `"coverage": 0.25`) {
		t.Fatalf("update: %v %s", err, out)
	}
	if out, err := cli("experiments", "start", "throttle-wifi"); err != nil || !strings.Contains(out, `"status": "running"`) {
		t.Fatalf("start: %v %s", err, out)
	}
	if out, err := cli("experiments", "stop", "throttle-wifi"); err != nil || !strings.Contains(out, `"status": "stopped"`) {
		t.Fatalf("stop: %v %s", err, out)
	}
	if _, err := cli("experiments", "create", `{"id":"bad","parameter":"heartbeat_interval_ms","control":30000,"variant":5}`); err == nil ||
		!strings.Contains(err.Error(), "within 100..300000") {
		t.Fatalf("create out of bounds: %v", err)
	}
	out, err = cli("experiments", "results", "heartbeat-cellular-v1")
	if err != nil || !strings.Contains(out, "reconnects_per_session") || !strings.Contains(out, "no verdict yet") {
		t.Fatalf("results: %v\n%s", err, out)
	}
	if _, err := cli("experiments", "results", "nope"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("results of an unknown experiment: %v", err)
	}
}

type cliError struct{ msg string }

func (e *cliError) Error() string { return e.msg }
