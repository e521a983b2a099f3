package experiment

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/experiment/stats"
)

// Alpha is the significance level of every verdict, after Holm's
// correction across the metrics and arms of one experiment.
const Alpha = 0.05

// Metric names of the analysis (SPEC §7), as the results list them.
const (
	MetricReconnectsPerSession  = "reconnects_per_session"
	MetricAvgConnectionDuration = "avg_connection_duration_ms"
	MetricJobCompletionRate     = "job_completion_rate"
	MetricRTTP50                = "rtt_p50_ms"
	MetricRTTP95                = "rtt_p95_ms"
	MetricHeartbeatsPerConnMin  = "heartbeats_per_connection_minute"
	MetricThrottleRate          = "throttle_rate"
)

// Num is a float that encodes NaN and ±Inf as JSON null: an estimate
// without data is "unknown", not an error.
type Num float64

// MarshalJSON implements json.Marshaler.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', 10, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler: null reads as NaN.
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("number %s: %w", b, err)
	}
	*n = Num(f)
	return nil
}

// Results is the analysis of one experiment.
type Results struct {
	ExperimentID string    `json:"experimentId"`
	Parameter    string    `json:"parameter"`
	Status       string    `json:"status"`
	ComputedAt   time.Time `json:"computedAt"`
	// Control names the arm every other is compared with.
	Control string      `json:"control"`
	Arms    []ArmResult `json:"arms"`
	SRM     SRMResult   `json:"srm"`
	// MinUnitsPerArm is the sample every arm needs before a verdict;
	// EnoughUnits says whether all have it.
	MinUnitsPerArm int            `json:"minUnitsPerArm"`
	EnoughUnits    bool           `json:"enoughUnits"`
	Metrics        []MetricResult `json:"metrics"`
	// Warnings explain withheld verdicts (too few units, SRM, …).
	Warnings []string `json:"warnings,omitempty"`
}

// ArmResult is one arm's enrollment.
type ArmResult struct {
	Name          string `json:"name"`
	Value         int64  `json:"value"`
	Units         int64  `json:"units"`
	ExpectedShare Num    `json:"expectedShare"`
	ObservedShare Num    `json:"observedShare"`
}

// SRMResult is the sample-ratio-mismatch check.
type SRMResult struct {
	ChiSquare Num  `json:"chiSquare"`
	P         Num  `json:"p"`
	Flagged   bool `json:"flagged"`
}

// MetricResult is one metric: each arm's estimate and each treatment
// arm's comparison with the control.
type MetricResult struct {
	Name string `json:"name"`
	// Test names the method: welch_t, two_proportion_z, delta_ratio or
	// quantile_z.
	Test        string       `json:"test"`
	Description string       `json:"description"`
	Arms        []ArmMetric  `json:"arms"`
	Comparisons []Comparison `json:"comparisons"`
}

// ArmMetric is a metric's estimate in one arm with its 95 % interval, and
// the units (or samples) it rests on.
type ArmMetric struct {
	Name  string `json:"name"`
	Value Num    `json:"value"`
	Lo    Num    `json:"lo"`
	Hi    Num    `json:"hi"`
	N     int64  `json:"n"`
}

// Comparison is a treatment arm against the control.
type Comparison struct {
	Variant string `json:"variant"`
	Diff    Num    `json:"diff"`
	DiffLo  Num    `json:"diffLo"`
	DiffHi  Num    `json:"diffHi"`
	Lift    Num    `json:"lift"`
	LiftLo  Num    `json:"liftLo"`
	LiftHi  Num    `json:"liftHi"`
	P       Num    `json:"p"`
	// PAdjusted is P after Holm's correction over every comparison of
	// the experiment.
	PAdjusted Num `json:"pAdjusted"`
	// Significant is PAdjusted < 0.05 with enough units in every arm and
	// no sample ratio mismatch.
	Significant bool `json:"significant"`
}

// armData is what the SQL returns for one arm.
type armData struct {
	units                                   float64
	recon, reconSq                          float64
	conns, connsSq, dur, durSq, durConns    float64
	hb, hbSq, hbDur, durMin, durMinSq       float64
	thr, thrSq, frames, framesSq, thrFrames float64
	finished, completed                     float64
	mixed                                   float64 // units exposed to more than one arm
	q50, q50lo, q50hi, q95, q95lo, q95hi    float64
	below50, below95                        stats.RatioSummary
	samples                                 float64
}

// quantileBand is half the width, in levels, of the quantiles read around
// p50 and p95 to estimate the RTT density there (for the quantiles'
// standard errors).
const quantileBand = 0.02

// Results analyses experiment id from the telemetry store.
func (s *Service) Results(ctx context.Context, id string) (*Results, error) {
	if s.opt.Telemetry == nil {
		return nil, errors.New("experiment results: no telemetry store")
	}
	e, err := s.opt.Store.GetExperiment(ctx, id)
	if err != nil {
		return nil, err
	}
	d, ok := dialects[s.opt.Telemetry.Dialect()]
	if !ok {
		return nil, fmt.Errorf("experiment results: no SQL dialect for telemetry store %q", s.opt.Telemetry.Dialect())
	}
	data, err := s.armData(ctx, d, e)
	if err != nil {
		return nil, err
	}
	return analyse(e, data, s.opt.Clock.Now().UTC()), nil
}

// unitsSQL is the per-unit table: each exposed unit's arm (from its first
// exposure) and its outcomes from then on. The join is by unit id, so a
// unit's outcomes count only in its own arm; events before the exposure
// (the connection that was already open when the experiment started) are
// left out. Plain SQL that DuckDB and ClickHouse both run.
const unitsSQL = `WITH x AS (
	SELECT job_id, min(variant) AS variant, min(ts) AS first_ts, count(DISTINCT variant) AS arms
	FROM events WHERE event = 'exposure' AND experiment_id = ? GROUP BY job_id
), o AS (
	SELECT e.job_id AS job_id,
		sum(CASE WHEN e.event = 'reconnected' THEN 1 ELSE 0 END) AS recon,
		sum(CASE WHEN e.event = 'disconnected' THEN 1 ELSE 0 END) AS conns,
		sum(CASE WHEN e.event = 'disconnected' THEN CAST(e.duration_ms AS DOUBLE) ELSE 0 END) AS dur,
		sum(CASE WHEN e.event = 'heartbeat' THEN CAST(e.sample_interval AS DOUBLE) ELSE 0 END) AS hb,
		sum(CASE WHEN e.event = 'disconnected' THEN CAST(e.throttled_count AS DOUBLE) ELSE 0 END) AS thr,
		sum(CASE WHEN e.event = 'disconnected' THEN CAST(e.throttled_count + e.progress_sent AS DOUBLE) ELSE 0 END) AS frames,
		max(CASE WHEN e.event = 'job_completed' THEN 1 ELSE 0 END) AS completed,
		max(CASE WHEN e.event = 'job_completed' OR e.event = 'job_failed' THEN 1 ELSE 0 END) AS finished
	FROM events e JOIN x ON e.job_id = x.job_id
	WHERE e.ts >= x.first_ts AND e.event <> 'exposure'
	GROUP BY e.job_id
), u AS (
	SELECT x.variant AS variant, CAST(CASE WHEN x.arms > 1 THEN 1 ELSE 0 END AS DOUBLE) AS mixed,
		CAST(coalesce(o.recon, 0) AS DOUBLE) AS recon, CAST(coalesce(o.conns, 0) AS DOUBLE) AS conns,
		coalesce(o.dur, 0) AS dur, coalesce(o.hb, 0) AS hb, coalesce(o.thr, 0) AS thr, coalesce(o.frames, 0) AS frames,
		CAST(coalesce(o.completed, 0) AS DOUBLE) AS completed, CAST(coalesce(o.finished, 0) AS DOUBLE) AS finished
	FROM x LEFT JOIN o ON x.job_id = o.job_id
)
SELECT variant, count(*) AS units,
	sum(recon), sum(recon * recon),
	sum(conns), sum(conns * conns), sum(dur), sum(dur * dur), sum(dur * conns),
	sum(hb), sum(hb * hb), sum(hb * dur / 60000), sum(dur / 60000), sum((dur / 60000) * (dur / 60000)),
	sum(thr), sum(thr * thr), sum(frames), sum(frames * frames), sum(thr * frames),
	sum(finished), sum(completed), sum(mixed)
FROM u GROUP BY variant ORDER BY variant`

// armData runs the analysis queries.
func (s *Service) armData(ctx context.Context, d dialect, e *jobcast.Experiment) (map[string]*armData, error) {
	rows, err := s.opt.Telemetry.Query(ctx, unitsSQL, e.ID)
	if err != nil {
		return nil, fmt.Errorf("experiment results: %w", err)
	}
	out := map[string]*armData{}
	for _, r := range rows.Rows {
		name, _ := r[0].(string)
		f := make([]float64, len(r)-1)
		for i, v := range r[1:] {
			f[i] = toFloat(v)
		}
		a := &armData{
			units: f[0], recon: f[1], reconSq: f[2],
			conns: f[3], connsSq: f[4], dur: f[5], durSq: f[6], durConns: f[7],
			hb: f[8], hbSq: f[9], hbDur: f[10], durMin: f[11], durMinSq: f[12],
			thr: f[13], thrSq: f[14], frames: f[15], framesSq: f[16], thrFrames: f[17],
			finished: f[18], completed: f[19], mixed: f[20],
		}
		for _, p := range []*float64{&a.q50, &a.q50lo, &a.q50hi, &a.q95, &a.q95lo, &a.q95hi} {
			*p = math.NaN()
		}
		out[name] = a
	}
	if len(out) == 0 {
		return out, nil
	}
	// RTT quantiles per arm, and the quantiles quantileBand either side
	// for the density.
	levels := []float64{0.5 - quantileBand, 0.5, 0.5 + quantileBand, 0.95 - quantileBand, 0.95, 0.95 + quantileBand}
	q := `WITH x AS (SELECT job_id, min(variant) AS variant, min(ts) AS first_ts FROM events
		WHERE event = 'exposure' AND experiment_id = ? GROUP BY job_id)
	SELECT x.variant, count(*)`
	for _, l := range levels {
		q += ", " + d.quantile("e.rtt_ms", l)
	}
	q += ` FROM events e JOIN x ON e.job_id = x.job_id WHERE e.event = 'heartbeat' AND e.ts >= x.first_ts GROUP BY x.variant`
	rows, err = s.opt.Telemetry.Query(ctx, q, e.ID)
	if err != nil {
		return nil, fmt.Errorf("experiment results: RTT quantiles: %w", err)
	}
	for _, r := range rows.Rows {
		name, _ := r[0].(string)
		a, ok := out[name]
		if !ok {
			continue
		}
		a.samples = toFloat(r[1])
		a.q50lo, a.q50, a.q50hi = toFloat(r[2]), toFloat(r[3]), toFloat(r[4])
		a.q95lo, a.q95, a.q95hi = toFloat(r[5]), toFloat(r[6]), toFloat(r[7])
	}
	// The share of each unit's heartbeats at or below its arm's quantile:
	// Σ below / Σ heartbeats over units is the quantile's level, and its
	// delta-method variance over units is the level's uncertainty with the
	// heartbeats of one unit correlated, as they are.
	for name, a := range out {
		if a.samples == 0 {
			continue
		}
		rows, err := s.opt.Telemetry.Query(ctx, `WITH x AS (SELECT job_id, min(variant) AS variant, min(ts) AS first_ts FROM events
			WHERE event = 'exposure' AND experiment_id = ? GROUP BY job_id),
		h AS (SELECT e.job_id AS job_id, CAST(count(*) AS DOUBLE) AS m,
			CAST(sum(CASE WHEN e.rtt_ms <= ? THEN 1 ELSE 0 END) AS DOUBLE) AS a50,
			CAST(sum(CASE WHEN e.rtt_ms <= ? THEN 1 ELSE 0 END) AS DOUBLE) AS a95
			FROM events e JOIN x ON e.job_id = x.job_id
			WHERE e.event = 'heartbeat' AND e.ts >= x.first_ts AND x.variant = ? GROUP BY e.job_id)
		SELECT CAST(count(*) AS DOUBLE), sum(m), sum(m * m), sum(a50), sum(a50 * a50), sum(a50 * m), sum(a95), sum(a95 * a95), sum(a95 * m) FROM h`,
			e.ID, a.q50, a.q95, name)
		if err != nil {
			return nil, fmt.Errorf("experiment results: RTT levels: %w", err)
		}
		if len(rows.Rows) != 1 {
			continue
		}
		r := rows.Rows[0]
		f := make([]float64, len(r))
		for i, v := range r {
			f[i] = toFloat(v)
		}
		a.below50 = stats.RatioFromSums(f[0], f[3], f[1], f[4], f[2], f[5])
		a.below95 = stats.RatioFromSums(f[0], f[6], f[1], f[7], f[2], f[8])
	}
	return out, nil
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case float32:
		return float64(x)
	case int64:
		return float64(x)
	case int32:
		return float64(x)
	case int:
		return float64(x)
	case uint64:
		return float64(x)
	case *big.Int: // DuckDB's HUGEINT sums
		f, _ := new(big.Float).SetInt(x).Float64()
		return f
	case nil:
		return math.NaN()
	}
	return math.NaN()
}
