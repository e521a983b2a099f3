package gql

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/experiment"
	"github.com/jobcast/jobcast/protocol"
)

// Experiments answers the experiments and experimentResults queries: the
// experiment service.
type Experiments interface {
	List(ctx context.Context) ([]jobcast.Experiment, error)
	Results(ctx context.Context, id string) (*experiment.Results, error)
}

// WithExperiments serves experiments and experimentResults from src
// (without it both queries are errors).
func WithExperiments(src Experiments) Option {
	return func(r *resolver) { r.experiments = src }
}

// errNoExperiments answers the experiment queries on a server without the
// experiment service.
var errNoExperiments = &queryError{code: protocol.ErrUnavailable, msg: "experiments are not available on this server"}

// The views below are the GraphQL side of the experiment types, resolved
// field by field (UseFieldResolvers) so that each field's name matches the
// REST JSON key. They exist because GraphQL has no NaN (an estimate without
// data is null, as in REST: experiment.Num), its Int has 32 bits (counts are
// Float), and REST's omitempty fields must read as null, not as zero.

type resultsView struct {
	ExperimentID   string
	Parameter      string
	Status         string
	ComputedAt     Time
	Control        string
	Arms           []*armView
	SRM            *srmView
	MinUnitsPerArm float64
	EnoughUnits    bool
	Metrics        []*metricView
	Warnings       []string
}

type armView struct {
	Name          string
	Value         float64
	Units         float64
	ExpectedShare *float64
	ObservedShare *float64
}

type srmView struct {
	ChiSquare *float64
	P         *float64
	Flagged   bool
}

type metricView struct {
	Name        string
	Test        string
	Description string
	Arms        []*armMetricView
	Comparisons []*comparisonView
}

type armMetricView struct {
	Name  string
	Value *float64
	Lo    *float64
	Hi    *float64
	N     float64
}

type comparisonView struct {
	Variant     string
	Diff        *float64
	DiffLo      *float64
	DiffHi      *float64
	Lift        *float64
	LiftLo      *float64
	LiftHi      *float64
	P           *float64
	PAdjusted   *float64
	Significant bool
}

// num is n as REST writes it (experiment.Num): null for NaN and ±Inf,
// otherwise rounded to 10 significant digits, so that both APIs answer the
// same numbers (the digits beyond are noise of the estimates anyway).
func num(n experiment.Num) *float64 {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	f, _ = strconv.ParseFloat(strconv.FormatFloat(f, 'g', 10, 64), 64)
	return &f
}

func newResultsView(res *experiment.Results) *resultsView {
	v := &resultsView{
		ExperimentID: res.ExperimentID, Parameter: res.Parameter, Status: res.Status,
		ComputedAt: Time{res.ComputedAt}, Control: res.Control,
		SRM:            &srmView{ChiSquare: num(res.SRM.ChiSquare), P: num(res.SRM.P), Flagged: res.SRM.Flagged},
		MinUnitsPerArm: float64(res.MinUnitsPerArm), EnoughUnits: res.EnoughUnits,
		Arms: make([]*armView, len(res.Arms)), Metrics: make([]*metricView, len(res.Metrics)),
		Warnings: res.Warnings,
	}
	if v.Warnings == nil {
		v.Warnings = []string{}
	}
	for i, a := range res.Arms {
		v.Arms[i] = &armView{Name: a.Name, Value: float64(a.Value), Units: float64(a.Units),
			ExpectedShare: num(a.ExpectedShare), ObservedShare: num(a.ObservedShare)}
	}
	for i, m := range res.Metrics {
		mv := &metricView{Name: m.Name, Test: m.Test, Description: m.Description,
			Arms: make([]*armMetricView, len(m.Arms)), Comparisons: make([]*comparisonView, len(m.Comparisons))}
		for j, a := range m.Arms {
			mv.Arms[j] = &armMetricView{Name: a.Name, Value: num(a.Value), Lo: num(a.Lo), Hi: num(a.Hi), N: float64(a.N)}
		}
		for j, c := range m.Comparisons {
			mv.Comparisons[j] = &comparisonView{Variant: c.Variant, Diff: num(c.Diff), DiffLo: num(c.DiffLo), DiffHi: num(c.DiffHi),
				Lift: num(c.Lift), LiftLo: num(c.LiftLo), LiftHi: num(c.LiftHi), P: num(c.P), PAdjusted: num(c.PAdjusted),
				Significant: c.Significant}
		}
		v.Metrics[i] = mv
	}
	return v
}

type experimentView struct {
	ID             string
	Description    *string
	Parameter      string
	Control        *float64
	Variant        *float64
	Split          *float64
	Variants       *[]*variantView
	Coverage       float64
	Segment        *segmentView
	Namespace      *namespaceView
	Unit           string
	Seed           *string
	Status         string
	MinUnitsPerArm *float64
	CreatedAt      *Time
	UpdatedAt      *Time
	StartedAt      *Time
	StoppedAt      *Time
}

type variantView struct {
	Name   string
	Value  float64
	Weight float64
}

type namespaceView struct {
	Name  string
	Start float64
	End   float64
}

type segmentView struct {
	NetworkType *[]string
	Pipeline    *[]string
	DeviceModel *[]string
	OSVersion   *string
	AppVersion  *string
}

// Helpers turning REST's omitempty fields into nulls.

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optInt(p *int64) *float64 {
	if p == nil {
		return nil
	}
	f := float64(*p)
	return &f
}

func optFloat(f float64) *float64 {
	if f == 0 {
		return nil
	}
	return &f
}

func optTime(t time.Time) *Time {
	if t.IsZero() {
		return nil
	}
	return &Time{t}
}

func optList(l jobcast.StringList) *[]string {
	if len(l) == 0 {
		return nil
	}
	s := []string(l)
	return &s
}

func newExperimentView(e jobcast.Experiment) *experimentView {
	v := &experimentView{
		ID: e.ID, Description: optString(e.Description), Parameter: e.Parameter,
		Control: optInt(e.Control), Variant: optInt(e.Variant), Split: optFloat(e.Split),
		Coverage: e.Coverage, Unit: e.Unit, Seed: optString(e.Seed), Status: e.Status,
		MinUnitsPerArm: optFloat(float64(e.MinUnitsPerArm)),
		Segment: &segmentView{NetworkType: optList(e.Segment.NetworkType), Pipeline: optList(e.Segment.Pipeline),
			DeviceModel: optList(e.Segment.DeviceModel), OSVersion: optString(e.Segment.OSVersion),
			AppVersion: optString(e.Segment.AppVersion)},
		CreatedAt: optTime(e.CreatedAt), UpdatedAt: optTime(e.UpdatedAt),
		StartedAt: optTime(e.StartedAt), StoppedAt: optTime(e.StoppedAt),
	}
	if len(e.Variants) > 0 {
		vs := make([]*variantView, len(e.Variants))
		for i, a := range e.Variants {
			vs[i] = &variantView{Name: a.Name, Value: float64(a.Value), Weight: a.Weight}
		}
		v.Variants = &vs
	}
	if e.Namespace != nil {
		v.Namespace = &namespaceView{Name: e.Namespace.Name, Start: e.Namespace.Start, End: e.Namespace.End}
	}
	return v
}

// Experiments resolves experiments: every experiment, as GET
// /v1/experiments lists them.
func (r *resolver) Experiments(ctx context.Context) ([]*experimentView, error) {
	if r.experiments == nil {
		return nil, errNoExperiments
	}
	list, err := r.experiments.List(ctx)
	if err != nil {
		return nil, r.fail(ctx, "experiments", err)
	}
	out := make([]*experimentView, len(list))
	for i, e := range list {
		out[i] = newExperimentView(e)
	}
	return out, nil
}

// ExperimentResults resolves experimentResults(id): the same document as
// GET /v1/experiments/{id}/results.
func (r *resolver) ExperimentResults(ctx context.Context, args struct{ ID string }) (*resultsView, error) {
	if r.experiments == nil {
		return nil, errNoExperiments
	}
	res, err := r.experiments.Results(ctx, args.ID)
	if err != nil {
		return nil, r.fail(ctx, "experimentResults", err)
	}
	return newResultsView(res), nil
}
