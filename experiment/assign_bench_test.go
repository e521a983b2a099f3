package experiment_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/jobcast/jobcast"
)

// BenchmarkAssign measures what a new connection pays for experiments:
// none running (the common case), a reconnect (the unit's decision is in
// the cache) and a new unit (decided and stored in SQLite).
func BenchmarkAssign(b *testing.B) {
	ctx := context.Background()
	control, variant := int64(30000), int64(45000)
	for _, bc := range []struct {
		name     string
		running  bool
		newUnits bool
	}{{"none_running", false, false}, {"reconnect", true, false}, {"new_unit", true, true}} {
		b.Run(bc.name, func(b *testing.B) {
			svc, _ := newService(b, nil)
			if bc.running {
				if _, err := svc.Create(ctx, jobcast.Experiment{ID: "hb", Parameter: jobcast.ParamHeartbeatInterval, Control: &control,
					Variant: &variant, Coverage: 1, Status: jobcast.ExperimentRunning, Segment: jobcast.Segment{NetworkType: jobcast.StringList{"cellular"}}}); err != nil {
					b.Fatal(err)
				}
			}
			u := jobcast.ExperimentUnit{UnitID: "job-0", NetworkType: "cellular", AppVersion: "3.4.2", OSVersion: "iOS 18.1", Pipeline: "csv_import"}
			if _, err := svc.Assign(ctx, u); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if bc.newUnits {
					i++
					u.UnitID = "job-" + strconv.Itoa(i)
				}
				if _, err := svc.Assign(ctx, u); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
