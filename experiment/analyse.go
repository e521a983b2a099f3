package experiment

import (
	"fmt"
	"math"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/experiment/stats"
)

// zCrit95 is the normal's two-sided 95 % critical value.
const zCrit95 = 1.959963984540054

// metricSpec computes one metric per arm and compares arms.
type metricSpec struct {
	name, test, desc string
	// arm returns the estimate, its interval and the n it rests on.
	arm func(a *armData) ArmMetric
	// compare tests treatment against control.
	compare func(c, t *armData) stats.Test
}

func reconnects(a *armData) stats.Summary { return stats.SummaryFromSums(a.units, a.recon, a.reconSq) }
func duration(a *armData) stats.RatioSummary {
	return stats.RatioFromSums(a.units, a.dur, a.conns, a.durSq, a.connsSq, a.durConns)
}
func heartbeats(a *armData) stats.RatioSummary {
	return stats.RatioFromSums(a.units, a.hb, a.durMin, a.hbSq, a.durMinSq, a.hbDur)
}
func throttleRate(a *armData) stats.RatioSummary {
	return stats.RatioFromSums(a.units, a.thr, a.frames, a.thrSq, a.framesSq, a.thrFrames)
}

func ratioArm(r stats.RatioSummary, n float64) ArmMetric {
	lo, hi := r.RatioCI()
	return ArmMetric{Value: Num(r.Ratio()), Lo: Num(lo), Hi: Num(hi), N: int64(n)}
}

// quantileSE is the standard error of an arm's RTT quantile: the level's
// standard error (over units, so correlated heartbeats of one unit are
// not counted as independent) times the slope of the quantile function
// there, read from the quantiles quantileBand either side.
func quantileSE(below stats.RatioSummary, lo, hi float64) float64 {
	return math.Sqrt(below.RatioVar()) * (hi - lo) / (2 * quantileBand)
}

func quantileSpec(name, desc string, get func(a *armData) (q, lo, hi float64, below stats.RatioSummary)) metricSpec {
	return metricSpec{
		name: name, test: "quantile_z", desc: desc,
		arm: func(a *armData) ArmMetric {
			q, lo, hi, below := get(a)
			se := quantileSE(below, lo, hi)
			return ArmMetric{Value: Num(q), Lo: Num(q - zCrit95*se), Hi: Num(q + zCrit95*se), N: int64(a.samples)}
		},
		compare: func(c, t *armData) stats.Test {
			qc, loc, hic, bc := get(c)
			qt, lot, hit, bt := get(t)
			sc, st := quantileSE(bc, loc, hic), quantileSE(bt, lot, hit)
			return stats.ZDiff(qc, sc*sc, qt, st*st)
		},
	}
}

var metricSpecs = []metricSpec{
	{
		name: MetricReconnectsPerSession, test: "welch_t",
		desc: "reconnected events per unit (job) after exposure; mean per unit",
		arm: func(a *armData) ArmMetric {
			s := reconnects(a)
			lo, hi := stats.MeanCI(s)
			return ArmMetric{Value: Num(s.Mean), Lo: Num(lo), Hi: Num(hi), N: int64(a.units)}
		},
		compare: func(c, t *armData) stats.Test { return stats.WelchT(reconnects(c), reconnects(t)) },
	},
	{
		name: MetricAvgConnectionDuration, test: "delta_ratio",
		desc: "Σ duration_ms / Σ disconnected over units (ratio metric, delta method)",
		arm:  func(a *armData) ArmMetric { return ratioArm(duration(a), a.conns) },
		compare: func(c, t *armData) stats.Test {
			return stats.DeltaRatio(duration(c), duration(t))
		},
	},
	{
		name: MetricJobCompletionRate, test: "two_proportion_z",
		desc: "units whose job completed / units whose job finished (completed or failed)",
		arm: func(a *armData) ArmMetric {
			lo, hi := stats.ProportionCI(a.completed, a.finished)
			return ArmMetric{Value: Num(a.completed / a.finished), Lo: Num(lo), Hi: Num(hi), N: int64(a.finished)}
		},
		compare: func(c, t *armData) stats.Test {
			return stats.TwoProportions(c.completed, c.finished, t.completed, t.finished)
		},
	},
	quantileSpec(MetricRTTP50, "median heartbeat round trip (ms) of the arm's heartbeats",
		func(a *armData) (float64, float64, float64, stats.RatioSummary) {
			return a.q50, a.q50lo, a.q50hi, a.below50
		}),
	quantileSpec(MetricRTTP95, "95th percentile heartbeat round trip (ms) of the arm's heartbeats",
		func(a *armData) (float64, float64, float64, stats.RatioSummary) {
			return a.q95, a.q95lo, a.q95hi, a.below95
		}),
	{
		name: MetricHeartbeatsPerConnMin, test: "delta_ratio",
		desc: "Σ heartbeats / Σ connection minutes over units (battery proxy; ratio metric, delta method)",
		arm:  func(a *armData) ArmMetric { return ratioArm(heartbeats(a), a.units) },
		compare: func(c, t *armData) stats.Test {
			return stats.DeltaRatio(heartbeats(c), heartbeats(t))
		},
	},
	{
		name: MetricThrottleRate, test: "delta_ratio",
		desc: "Σ throttled / Σ (throttled + progress frames sent) over units (ratio metric, delta method)",
		arm:  func(a *armData) ArmMetric { return ratioArm(throttleRate(a), a.frames) },
		compare: func(c, t *armData) stats.Test {
			return stats.DeltaRatio(throttleRate(c), throttleRate(t))
		},
	},
}

// analyse turns the arms' aggregates into results: estimates, tests, Holm
// across every comparison, SRM and the verdict rules.
func analyse(e *jobcast.Experiment, data map[string]*armData, now time.Time) *Results {
	res := &Results{
		ExperimentID: e.ID, Parameter: e.Parameter, Status: e.Status, ComputedAt: now,
		Control: e.Variants[0].Name, MinUnitsPerArm: e.MinUnitsPerArm, EnoughUnits: true,
	}
	arms := make([]*armData, len(e.Variants))
	observed := make([]float64, len(e.Variants))
	weights := make([]float64, len(e.Variants))
	var total float64
	minUnits := math.Inf(1)
	for i, v := range e.Variants {
		a := data[v.Name]
		if a == nil {
			a = &armData{}
			for _, p := range []*float64{&a.q50, &a.q50lo, &a.q50hi, &a.q95, &a.q95lo, &a.q95hi} {
				*p = math.NaN()
			}
		}
		arms[i] = a
		observed[i], weights[i] = a.units, v.Weight
		total += a.units
		minUnits = math.Min(minUnits, a.units)
	}
	for i, v := range e.Variants {
		res.Arms = append(res.Arms, ArmResult{
			Name: v.Name, Value: v.Value, Units: int64(observed[i]),
			ExpectedShare: Num(v.Weight), ObservedShare: Num(observed[i] / total),
		})
	}
	chi2, p := stats.SRM(observed, weights)
	res.SRM = SRMResult{ChiSquare: Num(chi2), P: Num(p), Flagged: p < stats.SRMThreshold}
	if minUnits < float64(e.MinUnitsPerArm) {
		res.EnoughUnits = false
		res.Warnings = append(res.Warnings, fmt.Sprintf("no verdict yet: every arm needs %d units, the smallest has %d", e.MinUnitsPerArm, int64(minUnits)))
	}
	var mixed float64
	for _, a := range data {
		mixed += a.mixed
	}
	if mixed > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d units were exposed to more than one arm (counted in the first by name): assignment was not sticky for them", int64(mixed)))
	}
	if res.SRM.Flagged {
		res.Warnings = append(res.Warnings, fmt.Sprintf("sample ratio mismatch (chi-square %.1f, p = %.2g): the arms' sizes do not match their weights, so assignment or exposure logging is broken and no result can be trusted", chi2, p))
	}
	var ps []float64
	var cmps []*Comparison
	for _, spec := range metricSpecs {
		m := MetricResult{Name: spec.name, Test: spec.test, Description: spec.desc}
		for i, v := range e.Variants {
			am := spec.arm(arms[i])
			am.Name = v.Name
			m.Arms = append(m.Arms, am)
		}
		for i := 1; i < len(e.Variants); i++ {
			t := spec.compare(arms[0], arms[i])
			m.Comparisons = append(m.Comparisons, Comparison{
				Variant: e.Variants[i].Name,
				Diff:    Num(t.Diff), DiffLo: Num(t.DiffLo), DiffHi: Num(t.DiffHi),
				Lift: Num(t.Lift), LiftLo: Num(t.LiftLo), LiftHi: Num(t.LiftHi),
				P: Num(t.P),
			})
		}
		res.Metrics = append(res.Metrics, m)
	}
	for i := range res.Metrics {
		for j := range res.Metrics[i].Comparisons {
			c := &res.Metrics[i].Comparisons[j]
			cmps = append(cmps, c)
			ps = append(ps, float64(c.P))
		}
	}
	adj := stats.Holm(ps)
	for i, c := range cmps {
		c.PAdjusted = Num(adj[i])
		c.Significant = res.EnoughUnits && !res.SRM.Flagged && adj[i] < Alpha
	}
	return res
}
