package experiment

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/experiment/stats"
)

// simUnit is one simulated job's outcomes.
type simUnit struct {
	id                                   string
	recon, conns, durMs, hb, thr, frames float64
	finished, completed                  bool
	rtts                                 []float64
}

// simulate draws n units with skewed, unit-correlated outcomes, as real
// traffic has: a unit on a bad network reconnects more, has shorter
// connections and slower round trips.
func simulate(n int, seed uint64) []simUnit {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	out := make([]simUnit, n)
	for i := range out {
		bad := rng.Float64() < 0.3
		u := simUnit{id: fmt.Sprintf("job-%d", i)}
		lam := 0.3
		base := 40.0
		if bad {
			lam, base = 2, 150
		}
		for rng.Float64() < lam/(1+lam) { // geometric reconnects
			u.recon++
		}
		u.conns = 1 + u.recon
		for range int(u.conns) {
			u.durMs += 1000 * 60 * rng.ExpFloat64()
		}
		u.hb = math.Floor(u.durMs / 30000)
		u.frames = float64(20 + rng.IntN(200))
		u.thr = math.Floor(u.frames * rng.Float64() * 0.5)
		u.finished = rng.Float64() < 0.9
		u.completed = u.finished && rng.Float64() < 0.85
		for range 1 + rng.IntN(6) {
			u.rtts = append(u.rtts, base*math.Exp(0.6*rng.NormFloat64()))
		}
		out[i] = u
	}
	return out
}

// discrete is the quantile the SQL computes (quantile_disc): the smallest
// value whose cumulative share reaches level.
func discrete(sorted []float64, level float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(level*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// armFromUnits computes in Go what the analysis SQL returns for an arm.
func armFromUnits(us []simUnit) *armData {
	a := &armData{}
	var all []float64
	for _, u := range us {
		a.units++
		a.recon, a.reconSq = a.recon+u.recon, a.reconSq+u.recon*u.recon
		a.conns, a.connsSq = a.conns+u.conns, a.connsSq+u.conns*u.conns
		a.dur, a.durSq, a.durConns = a.dur+u.durMs, a.durSq+u.durMs*u.durMs, a.durConns+u.durMs*u.conns
		m := u.durMs / 60000
		a.hb, a.hbSq, a.hbDur = a.hb+u.hb, a.hbSq+u.hb*u.hb, a.hbDur+u.hb*m
		a.durMin, a.durMinSq = a.durMin+m, a.durMinSq+m*m
		a.thr, a.thrSq = a.thr+u.thr, a.thrSq+u.thr*u.thr
		a.frames, a.framesSq, a.thrFrames = a.frames+u.frames, a.framesSq+u.frames*u.frames, a.thrFrames+u.thr*u.frames
		if u.finished {
			a.finished++
		}
		if u.completed {
			a.completed++
		}
		all = append(all, u.rtts...)
	}
	slices.Sort(all)
	a.samples = float64(len(all))
	a.q50lo, a.q50, a.q50hi = discrete(all, 0.5-quantileBand), discrete(all, 0.5), discrete(all, 0.5+quantileBand)
	a.q95lo, a.q95, a.q95hi = discrete(all, 0.95-quantileBand), discrete(all, 0.95), discrete(all, 0.95+quantileBand)
	below := func(q float64) stats.RatioSummary {
		var n, sx, sy, sxx, syy, sxy float64
		for _, u := range us {
			var b float64
			for _, r := range u.rtts {
				if r <= q {
					b++
				}
			}
			m := float64(len(u.rtts))
			n, sx, sy, sxx, syy, sxy = n+1, sx+b, sy+m, sxx+b*b, syy+m*m, sxy+b*m
		}
		return stats.RatioFromSums(n, sx, sy, sxx, syy, sxy)
	}
	a.below50, a.below95 = below(a.q50), below(a.q95)
	return a
}

// TestAASimulation runs 120 A/A experiments (both arms the same value,
// different seeds) over 2,400 simulated units with skewed outcomes: the
// assignment must show no sample ratio mismatch beyond its 0.1 % rate, raw
// p-values must fall under 0.05 about 5 % of the time, and Holm's
// correction must keep experiments with any "significant" metric at or
// below the nominal 5 %.
func TestAASimulation(t *testing.T) {
	t.Parallel()
	pop := simulate(2400, 42)
	const experiments = 120
	var srm, anySig, rawSig, comparisons int
	for k := range experiments {
		e := jobcast.Experiment{ID: fmt.Sprintf("aa-%d", k), Parameter: jobcast.ParamHeartbeatInterval,
			Control: ptr(30000), Variant: ptr(30000), Coverage: 1, Status: jobcast.ExperimentRunning}
		if err := Normalize(&e); err != nil {
			t.Fatal(err)
		}
		c, err := compile(e)
		if err != nil {
			t.Fatal(err)
		}
		arms := map[string][]simUnit{}
		for _, u := range pop {
			eu := jobcast.ExperimentUnit{UnitID: u.id}
			a := c.decide(&eu)
			arms[a.Variant] = append(arms[a.Variant], u)
		}
		res := analyse(&e, map[string]*armData{"control": armFromUnits(arms["control"]), "variant": armFromUnits(arms["variant"])}, epochForTests)
		if res.SRM.Flagged {
			srm++
		}
		if !res.EnoughUnits {
			t.Fatalf("experiment %d: arms %+v below 1000 units", k, res.Arms)
		}
		sig := false
		for _, m := range res.Metrics {
			for _, cmp := range m.Comparisons {
				comparisons++
				if float64(cmp.P) < 0.05 {
					rawSig++
				}
				sig = sig || cmp.Significant
			}
		}
		if sig {
			anySig++
		}
	}
	raw := float64(rawSig) / float64(comparisons)
	fw := float64(anySig) / experiments
	t.Logf("%d A/A experiments: SRM flagged %d, raw p < 0.05 in %.3f of %d comparisons, experiments with a significant metric after Holm %.3f",
		experiments, srm, raw, comparisons, fw)
	if srm > 2 {
		t.Errorf("SRM flagged in %d of %d A/A experiments (expected 0.2)", srm, experiments)
	}
	if raw < 0.025 || raw > 0.08 {
		t.Errorf("raw false-positive rate %.3f, want about 0.05", raw)
	}
	if fw > 0.08 { // 5 % nominal; binomial sd 2 % over 120; the seeds are fixed
		t.Errorf("family-wise false-positive rate %.3f after Holm, want at most about 0.05", fw)
	}
}

var epochForTests = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
