// Package stats holds the frequentist tests of experiment analysis: Welch's
// t-test for means, the two-proportion z-test for rates, the delta method
// for ratio metrics and relative lifts, Holm's correction across metrics
// and the sample-ratio-mismatch chi-square test. Distributions come from
// gonum's distuv; the formulas are the textbook ones GrowthBook's
// frequentist engine uses.
package stats

import (
	"math"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"
)

// Summary is what a test needs of one arm's per-unit values.
type Summary struct {
	N    float64 // units
	Mean float64
	Var  float64 // sample variance (n - 1 in the denominator)
}

// Summarize returns the summary of xs.
func Summarize(xs []float64) Summary {
	n := float64(len(xs))
	if n == 0 {
		return Summary{}
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	mean := sum / n
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	v := 0.0
	if n > 1 {
		v = ss / (n - 1)
	}
	return Summary{N: n, Mean: mean, Var: v}
}

// SummaryFromSums builds a Summary from n, Σx and Σx², as a SQL aggregate
// returns them.
func SummaryFromSums(n, sum, sumSq float64) Summary {
	if n == 0 {
		return Summary{}
	}
	mean := sum / n
	v := 0.0
	if n > 1 {
		v = math.Max(0, (sumSq-n*mean*mean)/(n-1))
	}
	return Summary{N: n, Mean: mean, Var: v}
}

// Test is a comparison of a treatment arm with the control.
type Test struct {
	Control   float64 `json:"control"`
	Treatment float64 `json:"treatment"`
	// Diff is Treatment − Control with its 95 % confidence interval.
	Diff   float64 `json:"diff"`
	DiffLo float64 `json:"diffLo"`
	DiffHi float64 `json:"diffHi"`
	// Lift is Treatment / Control − 1 with its 95 % interval (delta
	// method); NaN when the control is 0.
	Lift   float64 `json:"lift"`
	LiftLo float64 `json:"liftLo"`
	LiftHi float64 `json:"liftHi"`
	// P is the two-sided p-value of "no difference".
	P float64 `json:"p"`
	// Stat is the test statistic (t or z) and DF its degrees of freedom
	// (+Inf for a z statistic).
	Stat float64 `json:"stat"`
	DF   float64 `json:"df"`
}

// Level is the confidence of every interval.
const Level = 0.95

var stdNormal = distuv.Normal{Mu: 0, Sigma: 1}

// zCrit is the two-sided critical value of the normal at Level (1.959964).
var zCrit = stdNormal.Quantile(1 - (1-Level)/2)

// MeanCI is the t interval of one arm's mean.
func MeanCI(s Summary) (lo, hi float64) {
	if s.N < 2 {
		return math.NaN(), math.NaN()
	}
	se := math.Sqrt(s.Var / s.N)
	q := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: s.N - 1}.Quantile(1 - (1-Level)/2)
	return s.Mean - q*se, s.Mean + q*se
}

// ProportionCI is the Wilson score interval of x successes in n, which
// unlike the Wald interval stays inside [0, 1] and is honest near 0 and 1.
func ProportionCI(x, n float64) (lo, hi float64) {
	if n == 0 {
		return math.NaN(), math.NaN()
	}
	p, z := x/n, zCrit
	den := 1 + z*z/n
	mid := (p + z*z/(2*n)) / den
	half := z * math.Sqrt(p*(1-p)/n+z*z/(4*n*n)) / den
	return math.Max(0, mid-half), math.Min(1, mid+half)
}

// WelchT compares means without assuming equal variances: t = Δ / √(v₁/n₁ +
// v₂/n₂) with Welch–Satterthwaite degrees of freedom.
func WelchT(control, treatment Summary) Test {
	t := Test{Control: control.Mean, Treatment: treatment.Mean, Diff: treatment.Mean - control.Mean, DF: math.NaN()}
	t.Lift, t.LiftLo, t.LiftHi = relLift(control, treatment)
	if control.N < 2 || treatment.N < 2 {
		t.P, t.Stat, t.DiffLo, t.DiffHi = math.NaN(), math.NaN(), math.NaN(), math.NaN()
		return t
	}
	a, b := control.Var/control.N, treatment.Var/treatment.N
	se := math.Sqrt(a + b)
	if se == 0 {
		t.DiffLo, t.DiffHi, t.Stat = t.Diff, t.Diff, math.NaN()
		t.P = 1
		if t.Diff != 0 {
			t.P = 0
		}
		return t
	}
	t.DF = (a + b) * (a + b) / (a*a/(control.N-1) + b*b/(treatment.N-1))
	dist := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: t.DF}
	t.Stat = t.Diff / se
	t.P = 2 * dist.Survival(math.Abs(t.Stat))
	q := dist.Quantile(1 - (1-Level)/2)
	t.DiffLo, t.DiffHi = t.Diff-q*se, t.Diff+q*se
	return t
}

// TwoProportions compares rates x₁/n₁ (control) and x₂/n₂: the z statistic
// uses the pooled rate under the null (as R's prop.test without continuity
// correction, whose X² is z²), the interval the unpooled standard error.
func TwoProportions(x1, n1, x2, n2 float64) Test {
	p1, p2 := x1/n1, x2/n2
	t := Test{Control: p1, Treatment: p2, Diff: p2 - p1, DF: math.Inf(1)}
	c := Summary{N: n1, Mean: p1, Var: p1 * (1 - p1) * n1 / math.Max(n1-1, 1)}
	tr := Summary{N: n2, Mean: p2, Var: p2 * (1 - p2) * n2 / math.Max(n2-1, 1)}
	t.Lift, t.LiftLo, t.LiftHi = relLift(c, tr)
	if n1 == 0 || n2 == 0 {
		t.P, t.Stat, t.DiffLo, t.DiffHi = math.NaN(), math.NaN(), math.NaN(), math.NaN()
		return t
	}
	pool := (x1 + x2) / (n1 + n2)
	se0 := math.Sqrt(pool * (1 - pool) * (1/n1 + 1/n2))
	se := math.Sqrt(p1*(1-p1)/n1 + p2*(1-p2)/n2)
	t.DiffLo, t.DiffHi = t.Diff-zCrit*se, t.Diff+zCrit*se
	if se0 == 0 {
		t.P, t.Stat = 1, 0
		return t
	}
	t.Stat = t.Diff / se0
	t.P = 2 * stdNormal.Survival(math.Abs(t.Stat))
	return t
}

// RatioSummary is what the delta method needs of one arm of a ratio metric
// Σnum / Σden computed over units (reconnects per connection-minute, …):
// the per-unit means, variances and covariance of numerator and
// denominator.
type RatioSummary struct {
	N                float64
	MeanNum, MeanDen float64
	VarNum, VarDen   float64
	Cov              float64
}

// RatioFromSums builds a RatioSummary from n, Σx, Σy, Σx², Σy², Σxy.
func RatioFromSums(n, sx, sy, sxx, syy, sxy float64) RatioSummary {
	if n == 0 {
		return RatioSummary{}
	}
	r := RatioSummary{N: n, MeanNum: sx / n, MeanDen: sy / n}
	if n > 1 {
		r.VarNum = math.Max(0, (sxx-n*r.MeanNum*r.MeanNum)/(n-1))
		r.VarDen = math.Max(0, (syy-n*r.MeanDen*r.MeanDen)/(n-1))
		r.Cov = (sxy - n*r.MeanNum*r.MeanDen) / (n - 1)
	}
	return r
}

// Ratio returns Σnum / Σden.
func (r RatioSummary) Ratio() float64 { return r.MeanNum / r.MeanDen }

// RatioVar is the delta-method variance of the ratio: units are
// independent, the events within a unit are not, so the variance comes
// from the units' sums (Deng et al. 2018, "Applying the Delta Method in
// Metric Analytics").
func (r RatioSummary) RatioVar() float64 {
	if r.N == 0 || r.MeanDen == 0 {
		return math.NaN()
	}
	m := r.MeanNum / r.MeanDen
	return (r.VarNum - 2*m*r.Cov + m*m*r.VarDen) / (r.MeanDen * r.MeanDen * r.N)
}

// RatioCI is the normal interval of the ratio.
func (r RatioSummary) RatioCI() (lo, hi float64) {
	se := math.Sqrt(r.RatioVar())
	return r.Ratio() - zCrit*se, r.Ratio() + zCrit*se
}

// DeltaRatio compares two arms' ratio metrics with a z-test on the
// difference of the ratios, each with its delta-method variance.
func DeltaRatio(control, treatment RatioSummary) Test {
	return ZDiff(control.Ratio(), control.RatioVar(), treatment.Ratio(), treatment.RatioVar())
}

// ZDiff compares two independent estimates given their variances (a
// ratio's, a quantile's) with a z-test; the lift interval is the delta
// method's for m₂/m₁.
func ZDiff(m1, v1, m2, v2 float64) Test {
	t := Test{Control: m1, Treatment: m2, Diff: m2 - m1, DF: math.Inf(1)}
	se := math.Sqrt(v1 + v2)
	t.Lift, t.LiftLo, t.LiftHi = liftCI(m1, v1, m2, v2)
	switch {
	case math.IsNaN(se) || math.IsNaN(t.Diff):
		t.P, t.Stat, t.DiffLo, t.DiffHi = math.NaN(), math.NaN(), math.NaN(), math.NaN()
	case se == 0:
		t.DiffLo, t.DiffHi, t.Stat = t.Diff, t.Diff, math.NaN()
		t.P = 1
		if t.Diff != 0 {
			t.P = 0
		}
	default:
		t.Stat = t.Diff / se
		t.P = 2 * stdNormal.Survival(math.Abs(t.Stat))
		t.DiffLo, t.DiffHi = t.Diff-zCrit*se, t.Diff+zCrit*se
	}
	return t
}

// relLift is the lift of two means with its delta-method interval.
func relLift(c, t Summary) (lift, lo, hi float64) {
	if c.N == 0 || t.N == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	return liftCI(c.Mean, c.Var/c.N, t.Mean, t.Var/t.N)
}

// liftCI: lift = m₂/m₁ − 1, Var ≈ v₂/m₁² + m₂²·v₁/m₁⁴ (the delta method
// for the ratio of independent estimates).
func liftCI(m1, v1, m2, v2 float64) (lift, lo, hi float64) {
	if m1 == 0 || math.IsNaN(m1) {
		return math.NaN(), math.NaN(), math.NaN()
	}
	lift = m2/m1 - 1
	v := v2/(m1*m1) + m2*m2*v1/(m1*m1*m1*m1)
	se := math.Sqrt(v)
	return lift, lift - zCrit*se, lift + zCrit*se
}

// Holm adjusts p-values for testing several metrics at once (Holm's
// step-down method, which controls the family-wise error rate like
// Bonferroni and rejects more). NaN p-values are left out and stay NaN.
func Holm(ps []float64) []float64 {
	type ip struct {
		i int
		p float64
	}
	var valid []ip
	for i, p := range ps {
		if !math.IsNaN(p) {
			valid = append(valid, ip{i, p})
		}
	}
	slices.SortStableFunc(valid, func(a, b ip) int {
		switch {
		case a.p < b.p:
			return -1
		case a.p > b.p:
			return 1
		}
		return 0
	})
	out := make([]float64, len(ps))
	for i := range out {
		out[i] = math.NaN()
	}
	m := float64(len(valid))
	running := 0.0
	for k, v := range valid {
		adj := math.Min(1, (m-float64(k))*v.p)
		running = math.Max(running, adj) // adjusted p-values never decrease
		out[v.i] = running
	}
	return out
}

// SRM is the sample-ratio-mismatch check: Pearson's chi-square test of the
// observed units per arm against the configured weights. A tiny p-value
// means assignment or logging is broken (units lost from one arm), and
// every other result of the experiment is suspect.
func SRM(observed, weights []float64) (chi2, p float64) {
	var n, w float64
	for i := range observed {
		n += observed[i]
		w += weights[i]
	}
	if n == 0 || len(observed) < 2 {
		return 0, 1
	}
	for i, o := range observed {
		e := n * weights[i] / w
		if e > 0 {
			chi2 += (o - e) * (o - e) / e
		}
	}
	return chi2, distuv.ChiSquared{K: float64(len(observed) - 1)}.Survival(chi2)
}

// SRMThreshold is the p-value below which a sample ratio mismatch is
// flagged: strict, since the check runs on every look at the results.
const SRMThreshold = 0.001

// ChiSquareSurvival is P(X > x) for X ~ χ²(k), for tests.
func ChiSquareSurvival(x, k float64) float64 { return distuv.ChiSquared{K: k}.Survival(x) }
