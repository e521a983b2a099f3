package stats

import (
	"math"
	"math/rand/v2"
	"testing"
)

func near(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.10g, want %.10g (±%g)", name, got, want, tol)
	}
}

// R's sleep data set (Student's 1908 data), the example of R's t.test.
var (
	sleep1 = []float64{0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0}
	sleep2 = []float64{1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4}
)

func TestWelchTAgainstR(t *testing.T) {
	t.Parallel()
	// R 4.x: t.test(extra ~ group, data = sleep) prints
	//   t = -1.8608, df = 17.776, p-value = 0.07939
	//   95 percent confidence interval: -3.3654832  0.2054832
	//   mean in group 1 0.75, mean in group 2 2.33
	// (group 1 minus group 2; here treatment group 2 minus control 1).
	r := WelchT(Summarize(sleep1), Summarize(sleep2))
	near(t, "control", r.Control, 0.75, 1e-12)
	near(t, "treatment", r.Treatment, 2.33, 1e-12)
	near(t, "t", r.Stat, 1.8608, 5e-5)
	near(t, "df", r.DF, 17.776, 5e-4)
	near(t, "p", r.P, 0.07939, 5e-6)
	near(t, "lo", r.DiffLo, -0.2054832, 1e-6)
	near(t, "hi", r.DiffHi, 3.3654832, 1e-6)
	near(t, "lift", r.Lift, 2.33/0.75-1, 1e-12)
	if !(r.LiftLo < r.Lift && r.Lift < r.LiftHi) {
		t.Errorf("lift interval [%g, %g] misses %g", r.LiftLo, r.LiftHi, r.Lift)
	}
}

func TestMeanCIAgainstR(t *testing.T) {
	t.Parallel()
	// R: t.test(sleep$extra[1:10]) → 95 percent confidence interval:
	// -0.5297804  2.0297804.
	lo, hi := MeanCI(Summarize(sleep1))
	near(t, "lo", lo, -0.5297804, 1e-6)
	near(t, "hi", hi, 2.0297804, 1e-6)
}

func TestSummaryFromSums(t *testing.T) {
	t.Parallel()
	var s, ss float64
	for _, x := range sleep2 {
		s += x
		ss += x * x
	}
	a, b := Summarize(sleep2), SummaryFromSums(10, s, ss)
	near(t, "mean", b.Mean, a.Mean, 1e-12)
	near(t, "var", b.Var, a.Var, 1e-9)
}

func TestTwoProportions(t *testing.T) {
	t.Parallel()
	// 45/100 against 60/100, by hand: pooled p = 105/200 = 0.525,
	// z = 0.15 / √(0.525·0.475·(1/100 + 1/100)) = 2.1239770; R's
	// prop.test(c(45, 60), c(100, 100), correct = FALSE) reports
	// X-squared = z² = 4.5113, p-value = 0.03367. Unpooled interval:
	// 0.15 ± 1.959964·√(0.45·0.55/100 + 0.6·0.4/100) = [0.0131530, 0.2868470].
	r := TwoProportions(45, 100, 60, 100)
	near(t, "z", r.Stat, 2.123976976, 1e-8)
	near(t, "z²", r.Stat*r.Stat, 4.5113, 5e-5)
	near(t, "p", r.P, 0.03367206886, 1e-9)
	near(t, "lo", r.DiffLo, 0.01315296221, 1e-9)
	near(t, "hi", r.DiffHi, 0.2868470378, 1e-9)
	near(t, "lift", r.Lift, 0.6/0.45-1, 1e-12)
}

func TestProportionCIWilson(t *testing.T) {
	t.Parallel()
	// R: prop.test(45, 100, correct = FALSE)$conf.int → 0.3561454 0.5475540.
	lo, hi := ProportionCI(45, 100)
	near(t, "lo", lo, 0.3561454, 1e-7)
	near(t, "hi", hi, 0.5475540, 1e-7)
}

func TestSRM(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		observed []float64
		weights  []float64
		chi2, p  float64
		flagged  bool
	}{
		// (100² + 100²)/5100 = 3.9215686; df 1: p = erfc(√(χ²/2)).
		{"two arms", []float64{5000, 5200}, []float64{0.5, 0.5}, 3.921568627, 0.04767038066, false},
		// 0 + 100²/1000 + 100²/1000 = 20; df 2: p = e^(−χ²/2) = e^−10.
		{"three arms", []float64{1000, 1100, 900}, []float64{1, 1, 1}, 20, 4.539992976e-5, true},
		// Weights 20/80: expected 200/800.
		{"uneven weights", []float64{200, 800}, []float64{0.2, 0.8}, 0, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			chi2, p := SRM(tc.observed, tc.weights)
			near(t, "chi2", chi2, tc.chi2, 1e-8)
			near(t, "p", p, tc.p, 1e-10)
			if (p < SRMThreshold) != tc.flagged {
				t.Errorf("flagged = %v, want %v", p < SRMThreshold, tc.flagged)
			}
		})
	}
}

func TestHolm(t *testing.T) {
	t.Parallel()
	// By hand: sorted 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06,
	// 0.04·1 = 0.04 → kept monotone at 0.06. R: p.adjust(c(0.01, 0.04,
	// 0.03, 0.005), "holm") → 0.03 0.06 0.06 0.02.
	got := Holm([]float64{0.01, 0.04, math.NaN(), 0.03, 0.005})
	want := []float64{0.03, 0.06, math.NaN(), 0.06, 0.02}
	for i := range want {
		if math.IsNaN(want[i]) {
			if !math.IsNaN(got[i]) {
				t.Errorf("Holm[%d] = %g, want NaN", i, got[i])
			}
			continue
		}
		near(t, "Holm", got[i], want[i], 1e-12)
	}
}

func TestDeltaRatio(t *testing.T) {
	t.Parallel()
	// Units (num, den): (3,2) (5,4) (2,1) (8,5) (4,3). By hand: R = 22/15,
	// Var = (s²x − 2R·sxy + R²·s²y) / (ȳ²·n) = 0.0091358025.
	num, den := []float64{3, 5, 2, 8, 4}, []float64{2, 4, 1, 5, 3}
	var sx, sy, sxx, syy, sxy float64
	for i := range num {
		sx, sy = sx+num[i], sy+den[i]
		sxx, syy, sxy = sxx+num[i]*num[i], syy+den[i]*den[i], sxy+num[i]*den[i]
	}
	r := RatioFromSums(5, sx, sy, sxx, syy, sxy)
	near(t, "ratio", r.Ratio(), 22.0/15, 1e-12)
	near(t, "var", r.RatioVar(), 0.00913580246913581, 1e-12)

	// With every denominator 1 the ratio is a mean and its variance the
	// mean's: s²/n.
	s := Summarize(sleep2)
	var s2, s2q float64
	for _, x := range sleep2 {
		s2, s2q = s2+x, s2q+x*x
	}
	m := RatioFromSums(10, s2, 10, s2q, 10, s2)
	near(t, "mean as ratio", m.RatioVar(), s.Var/10, 1e-12)
}

// TestFalsePositiveRate runs A/A comparisons of skewed (exponential)
// per-unit values: Welch's test must reject about 5 % of them. With 2,000
// trials the binomial standard error is 0.5 %, so [3.5 %, 6.5 %] is three
// of them either side.
func TestFalsePositiveRate(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	const trials, n = 2000, 200
	var welch, ratio, prop int
	a, b := make([]float64, n), make([]float64, n)
	for range trials {
		var ra, rb [5]float64
		var xa, xb float64
		for i := range n {
			a[i], b[i] = rng.ExpFloat64(), rng.ExpFloat64()
			da, db := 1+float64(rng.IntN(5)), 1+float64(rng.IntN(5))
			na, nb := da*rng.ExpFloat64(), db*rng.ExpFloat64()
			ra[0], ra[1], ra[2], ra[3], ra[4] = ra[0]+na, ra[1]+da, ra[2]+na*na, ra[3]+da*da, ra[4]+na*da
			rb[0], rb[1], rb[2], rb[3], rb[4] = rb[0]+nb, rb[1]+db, rb[2]+nb*nb, rb[3]+db*db, rb[4]+nb*db
			if rng.Float64() < 0.3 {
				xa++
			}
			if rng.Float64() < 0.3 {
				xb++
			}
		}
		if WelchT(Summarize(a), Summarize(b)).P < 0.05 {
			welch++
		}
		if DeltaRatio(RatioFromSums(n, ra[0], ra[1], ra[2], ra[3], ra[4]), RatioFromSums(n, rb[0], rb[1], rb[2], rb[3], rb[4])).P < 0.05 {
			ratio++
		}
		if TwoProportions(xa, n, xb, n).P < 0.05 {
			prop++
		}
	}
	for name, k := range map[string]int{"welch": welch, "delta ratio": ratio, "two proportions": prop} {
		rate := float64(k) / trials
		t.Logf("%s: false-positive rate %.3f", name, rate)
		if rate < 0.035 || rate > 0.065 {
			t.Errorf("%s: false-positive rate %.3f, want about 0.05", name, rate)
		}
	}
}
