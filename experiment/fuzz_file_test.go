package experiment_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/jobcast/jobcast/experiment"
)

// FuzzLoadFile feeds arbitrary documents to the experiments file loader: it
// answers with experiments or an error, never panics, and every experiment
// it returns is valid (normalizing it again succeeds), so a hostile or
// garbled file cannot put a half-checked experiment into the store.
func FuzzLoadFile(f *testing.F) {
	for _, s := range []string{
		"",
		"experiments:\n  - id: heartbeat-cellular-v1\n    parameter: heartbeat_interval_ms\n    control: 30000\n    variant: 45000\n    segment: {networkType: cellular}\n    status: running\n",
		"experiments:\n  - {id: t1, parameter: throttle_ms, variants: [{name: a, value: 250, weight: 1}, {name: b, value: 750, weight: 3}], coverage: 0.5, namespace: {id: ns, start: 0, end: 0.5}}\n",
		"experiments:\n  - {id: x, parameter: nope}\n",
		"experiments: [{id: '', coverage: 2}]\n",
		"experiments:\n  - id: v\n    parameter: heartbeat_interval_ms\n    control: 30000\n    variant: 45000\n    segment: {appVersion: '>=3.4 <4', os: 'iOS >=17'}\n",
		"experiments: &a [*a]\n",
		"unknown: 1\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, doc []byte) {
		path := filepath.Join(dir, "experiments.yaml")
		if err := os.WriteFile(path, doc, 0o600); err != nil {
			t.Fatal(err)
		}
		exps, err := experiment.LoadFile(path)
		if err != nil {
			return
		}
		for i := range exps {
			e := exps[i]
			if err := experiment.Normalize(&e); err != nil {
				t.Fatalf("LoadFile returned experiment %q that does not validate again: %v\ndoc:\n%s", e.ID, err, doc)
			}
		}
	})
}
