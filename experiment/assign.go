package experiment

import (
	"math"
	"slices"
	"strings"

	"github.com/jobcast/jobcast"
)

// compiled is a running experiment ready for assignment: ranges and version
// constraints parsed once, not per connection.
type compiled struct {
	exp      jobcast.Experiment
	ranges   []armRange
	osRange  versionRange
	appRange versionRange
}

// armRange is an arm's buckets: [start, end).
type armRange struct {
	variant    jobcast.Variant
	start, end int
}

// compile prepares a normalized experiment.
func compile(e jobcast.Experiment) (*compiled, error) {
	c := &compiled{exp: e, ranges: bucketRanges(e.Variants, e.Coverage)}
	var err error
	if e.Segment.OSVersion != "" {
		if c.osRange, err = parseRange(e.Segment.OSVersion); err != nil {
			return nil, err
		}
	}
	if e.Segment.AppVersion != "" {
		if c.appRange, err = parseRange(e.Segment.AppVersion); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// bucketRanges gives each arm the buckets from its cumulative weight
// onwards, as many as weight × coverage of them. Raising coverage extends
// every range at its end, so an enrolled unit's bucket stays in its arm;
// the buckets past each range are the units not covered.
func bucketRanges(vs []jobcast.Variant, coverage float64) []armRange {
	out := make([]armRange, len(vs))
	cum := 0.0
	for i, v := range vs {
		start := int(math.Round(cum * Buckets))
		n := int(math.Round(coverage * v.Weight * Buckets))
		out[i] = armRange{variant: v, start: start, end: min(start+n, Buckets)}
		cum += v.Weight
	}
	return out
}

// inSegment reports whether u's client context is one the experiment
// targets.
func (c *compiled) inSegment(u *jobcast.ExperimentUnit) bool {
	s := &c.exp.Segment
	if len(s.NetworkType) > 0 && !slices.Contains(s.NetworkType, u.NetworkType) {
		return false
	}
	if len(s.Pipeline) > 0 && !slices.Contains(s.Pipeline, u.Pipeline) {
		return false
	}
	if len(s.DeviceModel) > 0 && !slices.ContainsFunc(s.DeviceModel, func(m string) bool {
		if p, ok := strings.CutSuffix(m, "*"); ok {
			return strings.HasPrefix(u.DeviceModel, p)
		}
		return m == u.DeviceModel
	}) {
		return false
	}
	if c.osRange != nil && !c.osRange.match(u.OSVersion) {
		return false
	}
	if c.appRange != nil && !c.appRange.match(u.AppVersion) {
		return false
	}
	return true
}

// decide is the fresh decision for u: enrolled in an arm, or not (outside
// the segment, the namespace or the coverage). Deterministic: every node
// decides the same for the same unit and experiment.
func (c *compiled) decide(u *jobcast.ExperimentUnit) jobcast.Assignment {
	a := jobcast.Assignment{ExperimentID: c.exp.ID, UnitID: u.UnitID}
	if !c.inSegment(u) {
		return a
	}
	if ns := c.exp.Namespace; ns != nil && !inNamespace(ns.Name, ns.Start, ns.End, u.UnitID) {
		return a
	}
	b := Bucket(c.exp.Seed, u.UnitID)
	for _, r := range c.ranges {
		if b >= r.start && b < r.end {
			a.Enrolled, a.Variant = true, r.variant.Name
			return a
		}
	}
	return a
}

// value returns the value of an arm.
func (c *compiled) value(variant string) (int64, bool) {
	for _, v := range c.exp.Variants {
		if v.Name == variant {
			return v.Value, true
		}
	}
	return 0, false
}
