package experiment

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/experiment/stats"
)

func TestBucketMatchesGrowthBookV2(t *testing.T) {
	t.Parallel()
	// GrowthBook's hash(seed, value, 2) is fnv32a(str(fnv32a(seed + value)))
	// % 10000 / 10000. FNV-1a 32 of "" is the offset basis 2166136261 and
	// of "a" 0xe40c292c (the FNV reference test vectors).
	if got := fnv1a32(""); got != 2166136261 {
		t.Fatalf("fnv1a32(\"\") = %d", got)
	}
	if got := fnv1a32("a"); got != 0xe40c292c {
		t.Fatalf("fnv1a32(\"a\") = %#x", got)
	}
	inner := fnv1a32("seed" + "unit-1")
	want := int(fnv1a32(strconv.FormatUint(uint64(inner), 10)) % 10000)
	if got := Bucket("seed", "unit-1"); got != want {
		t.Fatalf("Bucket = %d, want %d", got, want)
	}
}

// TestBucketUniform: 100,000 sequential ids ("job-0", "job-1", …, the
// worst case for a weak hash) spread evenly over 100 groups of buckets.
// Pearson's chi-square with 99 degrees of freedom: p must not be below
// 0.001.
func TestBucketUniform(t *testing.T) {
	t.Parallel()
	const n, groups = 100_000, 100
	counts := make([]float64, groups)
	fine := make([]float64, Buckets)
	for i := range n {
		b := Bucket("heartbeat-cellular-v1", "job-"+strconv.Itoa(i))
		counts[b*groups/Buckets]++
		fine[b]++
	}
	w := make([]float64, groups)
	for i := range w {
		w[i] = 1
	}
	chi2, p := stats.SRM(counts, w)
	t.Logf("100 groups: chi-square %.1f, p = %.3f", chi2, p)
	if p < 0.001 {
		t.Errorf("buckets are not uniform: chi-square %.1f (df 99), p = %.2g", chi2, p)
	}
	// And over all 10,000 buckets (10 ids each on average).
	wf := make([]float64, Buckets)
	for i := range wf {
		wf[i] = 1
	}
	chi2, p = stats.SRM(fine, wf)
	t.Logf("10,000 buckets: chi-square %.1f, p = %.3f", chi2, p)
	if p < 0.001 {
		t.Errorf("buckets are not uniform: chi-square %.1f (df 9999), p = %.2g", chi2, p)
	}
}

// TestExperimentsIndependent: the buckets of two experiments (different
// seeds) over the same 100,000 units are uncorrelated, and the arm of one
// tells nothing about the arm of the other.
func TestExperimentsIndependent(t *testing.T) {
	t.Parallel()
	const n = 100_000
	var sx, sy, sxx, syy, sxy float64
	var both [2][2]float64
	for i := range n {
		u := "job-" + strconv.Itoa(i)
		x, y := float64(Bucket("heartbeat-cellular-v1", u)), float64(Bucket("throttle-wifi-v2", u))
		sx, sy, sxx, syy, sxy = sx+x, sy+y, sxx+x*x, syy+y*y, sxy+x*y
		both[int(x)/5000][int(y)/5000]++
	}
	cov := sxy/n - sx/n*sy/n
	r := cov / math.Sqrt((sxx/n-sx/n*sx/n)*(syy/n-sy/n*sy/n))
	t.Logf("correlation %.5f; arms %v", r, both)
	if math.Abs(r) >= 0.01 {
		t.Errorf("|correlation| = %.4f, want < 0.01", r)
	}
	// The 2×2 table of arms: each cell near a quarter.
	for _, row := range both {
		for _, c := range row {
			if math.Abs(c/n-0.25) > 0.01 {
				t.Errorf("arm table %v is not independent", both)
			}
		}
	}
}

func running(t *testing.T, e jobcast.Experiment) *compiled {
	t.Helper()
	if e.Status == "" {
		e.Status = jobcast.ExperimentRunning
	}
	if err := Normalize(&e); err != nil {
		t.Fatal(err)
	}
	c, err := compile(e)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ptr(v int64) *int64 { return &v }

// TestCoverageRampKeepsEnrolled: raising coverage from 10 % to 50 % to 100 %
// enrolls more units and never moves or drops one already enrolled; the
// split stays 50/50 among the enrolled at every step.
func TestCoverageRampKeepsEnrolled(t *testing.T) {
	t.Parallel()
	const n = 20_000
	prev := map[string]string{}
	for _, cov := range []float64{0.1, 0.5, 1} {
		c := running(t, jobcast.Experiment{ID: "ramp", Parameter: jobcast.ParamHeartbeatInterval,
			Control: ptr(30000), Variant: ptr(45000), Coverage: cov})
		cur := map[string]string{}
		arms := map[string]int{}
		for i := range n {
			u := jobcast.ExperimentUnit{UnitID: fmt.Sprintf("job-%d", i)}
			a := c.decide(&u)
			if a.Enrolled {
				cur[u.UnitID] = a.Variant
				arms[a.Variant]++
			}
		}
		for id, v := range prev {
			if cur[id] != v {
				t.Fatalf("coverage %g: unit %s moved from %s to %q", cov, id, v, cur[id])
			}
		}
		share := float64(len(cur)) / n
		if math.Abs(share-cov) > 0.015 {
			t.Errorf("coverage %g enrolled %.3f of units", cov, share)
		}
		if r := float64(arms["variant"]) / float64(len(cur)); math.Abs(r-0.5) > 0.02 {
			t.Errorf("coverage %g: variant share %.3f", cov, r)
		}
		prev = cur
	}
}

func TestWeightedVariants(t *testing.T) {
	t.Parallel()
	c := running(t, jobcast.Experiment{ID: "three", Parameter: jobcast.ParamThrottle, Coverage: 1,
		Variants: []jobcast.Variant{{Name: "c", Value: 500, Weight: 2}, {Name: "a", Value: 250, Weight: 1}, {Name: "b", Value: 1000, Weight: 1}}})
	arms := map[string]float64{}
	const n = 40_000
	for i := range n {
		u := jobcast.ExperimentUnit{UnitID: fmt.Sprintf("job-%d", i)}
		arms[c.decide(&u).Variant]++
	}
	_, p := stats.SRM([]float64{arms["c"], arms["a"], arms["b"]}, []float64{2, 1, 1})
	if p < 0.001 {
		t.Errorf("arms %v do not follow weights 2:1:1 (p = %g)", arms, p)
	}
}

func TestNamespacesExclusive(t *testing.T) {
	t.Parallel()
	a := running(t, jobcast.Experiment{ID: "hb-a", Parameter: jobcast.ParamHeartbeatInterval, Control: ptr(30000), Variant: ptr(45000),
		Coverage: 1, Namespace: &jobcast.Namespace{Name: "heartbeat", Start: 0, End: 0.5}})
	b := running(t, jobcast.Experiment{ID: "hb-b", Parameter: jobcast.ParamHeartbeatInterval, Control: ptr(30000), Variant: ptr(20000),
		Coverage: 1, Namespace: &jobcast.Namespace{Name: "heartbeat", Start: 0.5, End: 1}})
	var inA, inB int
	for i := range 20_000 {
		u := jobcast.ExperimentUnit{UnitID: fmt.Sprintf("job-%d", i)}
		ea, eb := a.decide(&u).Enrolled, b.decide(&u).Enrolled
		if ea && eb {
			t.Fatalf("unit %s is in both experiments of one namespace", u.UnitID)
		}
		if ea {
			inA++
		}
		if eb {
			inB++
		}
	}
	if math.Abs(float64(inA)/20_000-0.5) > 0.02 || math.Abs(float64(inB)/20_000-0.5) > 0.02 {
		t.Errorf("namespace halves enrolled %d and %d of 20,000", inA, inB)
	}
	// Without disjoint namespaces, running both is refused.
	ea, eb := a.exp, b.exp
	eb.Namespace = &jobcast.Namespace{Name: "heartbeat", Start: 0.4, End: 1}
	if err := checkConflicts(&eb, []jobcast.Experiment{ea}); err == nil {
		t.Error("overlapping namespace ranges on one parameter were accepted")
	}
	eb.Namespace = nil
	if err := checkConflicts(&eb, []jobcast.Experiment{ea}); err == nil {
		t.Error("two running experiments on one parameter without a namespace were accepted")
	}
}

func TestSegments(t *testing.T) {
	t.Parallel()
	base := jobcast.ExperimentUnit{UnitID: "job-1", Pipeline: "csv_import", AppVersion: "3.4.2", OSVersion: "iOS 17.5",
		NetworkType: "cellular", DeviceModel: "iPhone15,3"}
	tests := []struct {
		name string
		seg  jobcast.Segment
		edit func(u *jobcast.ExperimentUnit)
		want bool
	}{
		{"empty segment matches all", jobcast.Segment{}, nil, true},
		{"network type", jobcast.Segment{NetworkType: jobcast.StringList{"cellular"}}, nil, true},
		{"other network type", jobcast.Segment{NetworkType: jobcast.StringList{"cellular"}}, func(u *jobcast.ExperimentUnit) { u.NetworkType = "wifi" }, false},
		{"network list", jobcast.Segment{NetworkType: jobcast.StringList{"wifi", "cellular"}}, nil, true},
		{"pipeline", jobcast.Segment{Pipeline: jobcast.StringList{"ai_scan"}}, nil, false},
		{"device exact", jobcast.Segment{DeviceModel: jobcast.StringList{"iPhone15,3"}}, nil, true},
		{"device prefix", jobcast.Segment{DeviceModel: jobcast.StringList{"iPhone*"}}, nil, true},
		{"device prefix miss", jobcast.Segment{DeviceModel: jobcast.StringList{"Pixel*"}}, nil, false},
		{"app >= (semver, not string order)", jobcast.Segment{AppVersion: ">=3.4.0"}, func(u *jobcast.ExperimentUnit) { u.AppVersion = "3.10.0" }, true},
		{"app < excluded", jobcast.Segment{AppVersion: ">=3.4.0 <3.5"}, func(u *jobcast.ExperimentUnit) { u.AppVersion = "3.5.0" }, false},
		{"app range", jobcast.Segment{AppVersion: ">=3.4.0 <3.5"}, nil, true},
		{"app pre-release is before the release", jobcast.Segment{AppVersion: ">=3.4.0"}, func(u *jobcast.ExperimentUnit) { u.AppVersion = "3.4.0-beta.2" }, false},
		{"pre-release order numeric", jobcast.Segment{AppVersion: ">3.4.0-beta.2"}, func(u *jobcast.ExperimentUnit) { u.AppVersion = "3.4.0-beta.10" }, true},
		{"app with v and build", jobcast.Segment{AppVersion: "^3.4"}, func(u *jobcast.ExperimentUnit) { u.AppVersion = "v3.9.1 (77)" }, true},
		{"caret excludes next major", jobcast.Segment{AppVersion: "^3.4"}, func(u *jobcast.ExperimentUnit) { u.AppVersion = "4.0.0" }, false},
		{"tilde", jobcast.Segment{AppVersion: "~3.4.1"}, nil, true},
		{"tilde excludes next minor", jobcast.Segment{AppVersion: "~3.4.1"}, func(u *jobcast.ExperimentUnit) { u.AppVersion = "3.5.0" }, false},
		{"bare version is a prefix", jobcast.Segment{AppVersion: "3.4"}, nil, true},
		{"missing version matches no range", jobcast.Segment{AppVersion: ">=1"}, func(u *jobcast.ExperimentUnit) { u.AppVersion = "" }, false},
		{"os platform and range", jobcast.Segment{OSVersion: "iOS >=17 <18"}, nil, true},
		{"os platform other", jobcast.Segment{OSVersion: "Android >=14"}, nil, false},
		{"os alternatives", jobcast.Segment{OSVersion: "Android >=14 || iOS >=17.4"}, nil, true},
		{"os version below", jobcast.Segment{OSVersion: "iOS >=18"}, nil, false},
		{"os 18.10 above 18.9", jobcast.Segment{OSVersion: "iOS >18.9"}, func(u *jobcast.ExperimentUnit) { u.OSVersion = "iOS 18.10" }, true},
		{"os platform only", jobcast.Segment{OSVersion: "Android"}, func(u *jobcast.ExperimentUnit) { u.OSVersion = "Android 13" }, true},
		{"all fields", jobcast.Segment{NetworkType: jobcast.StringList{"cellular"}, Pipeline: jobcast.StringList{"csv_import"},
			OSVersion: "iOS >=17", AppVersion: ">=3.4", DeviceModel: jobcast.StringList{"iPhone*"}}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := running(t, jobcast.Experiment{ID: "seg", Parameter: jobcast.ParamHeartbeatInterval, Control: ptr(30000), Variant: ptr(45000),
				Coverage: 1, Segment: tc.seg})
			u := base
			if tc.edit != nil {
				tc.edit(&u)
			}
			if got := c.inSegment(&u); got != tc.want {
				t.Errorf("inSegment = %v, want %v", got, tc.want)
			}
			if !tc.want && c.decide(&u).Enrolled {
				t.Error("a unit outside the segment was enrolled")
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	ok := func() jobcast.Experiment {
		e := Defaults()
		e.ID, e.Parameter, e.Control, e.Variant = "hb", jobcast.ParamHeartbeatInterval, ptr(30000), ptr(45000)
		return e
	}
	tests := []struct {
		name string
		edit func(e *jobcast.Experiment)
		want string // substring of the error; "" for valid
	}{
		{"valid", func(e *jobcast.Experiment) {}, ""},
		{"bad id", func(e *jobcast.Experiment) { e.ID = "a b" }, "id"},
		{"unknown parameter", func(e *jobcast.Experiment) { e.Parameter = "pong_timeout_ms" }, "registry"},
		{"below bounds", func(e *jobcast.Experiment) { e.Variant = ptr(10) }, "within 100..300000"},
		{"above bounds", func(e *jobcast.Experiment) { e.Control = ptr(3_600_000) }, "within"},
		{"control without variant", func(e *jobcast.Experiment) { e.Variant = nil }, "go together"},
		{"split out of range", func(e *jobcast.Experiment) { e.Split = 1 }, "split"},
		{"coverage zero", func(e *jobcast.Experiment) { e.Coverage = 0 }, "coverage"},
		{"coverage above one", func(e *jobcast.Experiment) { e.Coverage = 1.5 }, "coverage"},
		{"unit", func(e *jobcast.Experiment) { e.Unit = "device" }, "unit"},
		{"status", func(e *jobcast.Experiment) { e.Status = "paused" }, "status"},
		{"network type", func(e *jobcast.Experiment) { e.Segment.NetworkType = jobcast.StringList{"5g"} }, "networkType"},
		{"version range", func(e *jobcast.Experiment) { e.Segment.AppVersion = ">=x" }, "appVersion"},
		{"namespace range", func(e *jobcast.Experiment) { e.Namespace = &jobcast.Namespace{Name: "n", Start: 0.5, End: 0.5} }, "namespace"},
		{"duplicate variants", func(e *jobcast.Experiment) {
			e.Control, e.Variant = nil, nil
			e.Variants = []jobcast.Variant{{Name: "a", Value: 1000}, {Name: "a", Value: 2000}}
		}, "twice"},
		{"one variant", func(e *jobcast.Experiment) {
			e.Control, e.Variant = nil, nil
			e.Variants = []jobcast.Variant{{Name: "a", Value: 1000}}
		}, "at least two"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := ok()
			tc.edit(&e)
			err := Normalize(&e)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Normalize: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("Normalize accepted it; want an error about %q", tc.want)
			case tc.want != "" && !contains(err.Error(), tc.want):
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	e := ok()
	if err := Normalize(&e); err != nil {
		t.Fatal(err)
	}
	if len(e.Variants) != 2 || e.Variants[1].Weight != 0.5 || e.Seed != "hb" || e.MinUnitsPerArm != DefaultMinUnitsPerArm {
		t.Errorf("normalized %+v", e)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
