package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobcast/jobcast/loadgen"
)

// TestLoadgenAgainstServe runs `jobcast loadgen` against `jobcast serve`,
// both through Main, and checks the JSON report.
func TestLoadgenAgainstServe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{
		"JOBCAST_API_KEYS":    "loadgen-test-key-0123456789",
		"JOBCAST_ADMIN_TOKEN": "loadgen-admin-token-0123456789",
		"JOBCAST_DATA_DIR":    dir,
	}
	stdout, _, _ := runMain(t, []string{"serve", "-addr", "127.0.0.1:0", "-throttle", "0s"}, env)
	base := stdout.waitFor(t, servingRE)[1]

	out, errOut := &syncBuffer{}, &syncBuffer{}
	report := filepath.Join(dir, "report.json")
	rc := Main(context.Background(), []string{"loadgen", "-url", base, "-conns", "6", "-watchers-per-job", "2",
		"-connect-rate", "100", "-source-ips", "2", "-duration", "1s", "-rate", "10", "-json", "-json-out", report, "-seed", "3"},
		mapEnv(env), out, errOut)
	if rc != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", rc, out.String(), errOut.String())
	}
	var rep loadgen.Report
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out.String())
	}
	if rep.Established != 6 || rep.Jobs != 3 || rep.FramesLost != 0 || rep.LatencySamples == 0 {
		t.Fatalf("report: %+v", rep)
	}
	if rep.Server.Source != "proc" || rep.Server.Goroutines == 0 {
		t.Fatalf("server figures: %+v", rep.Server)
	}
	if data, err := os.ReadFile(report); err != nil || !strings.Contains(string(data), `"framesLost": 0`) {
		t.Fatalf("json-out file: %v\n%s", err, data)
	}

	// Without /proc (-server-pid -1) the figures come from /metrics.
	out, errOut = &syncBuffer{}, &syncBuffer{}
	rc = Main(context.Background(), []string{"loadgen", "-url", base, "-conns", "2", "-duration", "500ms", "-rate", "10",
		"-server-pid", "-1", "-json"}, mapEnv(env), out, errOut)
	if rc != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", rc, errOut.String())
	}
	rep = loadgen.Report{}
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Server.Source != "metrics" || rep.Server.FramesSent == 0 || rep.Server.BaselineRSSBytes == 0 {
		t.Fatalf("server figures from /metrics: %+v", rep.Server)
	}
}

func TestLoadgenRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"remote target", []string{"loadgen", "-url", "http://192.0.2.1:8080", "-api-key", "k"}, nil, "not a loopback address"},
		{"no api key", []string{"loadgen", "-url", "http://127.0.0.1:1"}, map[string]string{"JOBCAST_DATA_DIR": t.TempDir()}, "no API key"},
		{"bad network", []string{"loadgen", "-api-key", "k", "-network", "moon"}, nil, "unknown preset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, errOut := &syncBuffer{}, &syncBuffer{}
			if rc := Main(context.Background(), tt.args, mapEnv(tt.env), out, errOut); rc == 0 || !strings.Contains(errOut.String(), tt.want) {
				t.Fatalf("exit %d, stderr:\n%s", rc, errOut.String())
			}
		})
	}
}
