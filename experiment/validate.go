package experiment

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

// DefaultMinUnitsPerArm is how many units each arm needs before a result is
// called significant: below it, a p-value under 0.05 is too often luck or
// an early burst of unusual traffic.
const DefaultMinUnitsPerArm = 1000

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

var networkTypes = []string{"wifi", "cellular", "ethernet", "unknown"}

func badRequest(format string, args ...any) error {
	return jobcast.Errorf(protocol.ErrBadRequest, format, args...)
}

// Defaults is the experiment a create request is decoded over, so that
// fields it leaves out keep these values.
func Defaults() jobcast.Experiment {
	return jobcast.Experiment{Coverage: 1, Unit: jobcast.UnitJob, Status: jobcast.ExperimentDraft}
}

// Normalize fills derived fields (variants from control/variant/split and
// back, the seed, the unit) and validates e. Errors are *jobcast.Error with
// E_BAD_REQUEST and say what to change.
func Normalize(e *jobcast.Experiment) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !idPattern.MatchString(e.ID) {
		bad("id %q must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", e.ID)
	}
	param, ok := jobcast.LookupParameter(e.Parameter)
	if !ok {
		names := make([]string, len(jobcast.Parameters))
		for i, p := range jobcast.Parameters {
			names[i] = p.Name
		}
		bad("parameter %q is not in the registry (%s)", e.Parameter, strings.Join(names, ", "))
	}
	switch {
	case e.Control != nil || e.Variant != nil:
		if e.Control == nil || e.Variant == nil {
			bad("control and variant go together; or list the arms as variants")
			break
		}
		if e.Split == 0 {
			e.Split = 0.5
		}
		if !(e.Split > 0 && e.Split < 1) {
			bad("split must be between 0 and 1 (the variant's share), got %g", e.Split)
		}
		e.Variants = []jobcast.Variant{
			{Name: "control", Value: *e.Control, Weight: 1 - e.Split},
			{Name: "variant", Value: *e.Variant, Weight: e.Split},
		}
	case len(e.Variants) < 2:
		bad("an experiment needs control and variant values, or at least two variants")
	default:
		sum := 0.0
		for _, v := range e.Variants {
			sum += v.Weight
		}
		if sum == 0 { // no weights: equal shares
			for i := range e.Variants {
				e.Variants[i].Weight = 1
			}
			sum = float64(len(e.Variants))
		}
		for i := range e.Variants {
			e.Variants[i].Weight /= sum
		}
	}
	seen := map[string]bool{}
	for _, v := range e.Variants {
		if !idPattern.MatchString(v.Name) {
			bad("variant name %q must be 1-64 letters, digits, '.', '_' or '-'", v.Name)
		}
		if seen[v.Name] {
			bad("variant %q appears twice", v.Name)
		}
		seen[v.Name] = true
		if !(v.Weight > 0) || math.IsInf(v.Weight, 0) {
			bad("variant %q needs a positive weight", v.Name)
		}
		if ok && (v.Value < param.Min || v.Value > param.Max) {
			bad("%s of variant %q is %d; it must be within %d..%d %s", e.Parameter, v.Name, v.Value, param.Min, param.Max, param.Unit)
		}
	}
	// Two arms named control and variant read back in the short form.
	if len(e.Variants) == 2 && e.Variants[0].Name == "control" && e.Variants[1].Name == "variant" {
		c, v := e.Variants[0].Value, e.Variants[1].Value
		e.Control, e.Variant, e.Split = &c, &v, e.Variants[1].Weight
	} else {
		e.Control, e.Variant, e.Split = nil, nil, 0
	}
	if !(e.Coverage > 0 && e.Coverage <= 1) {
		bad("coverage must be within (0, 1], got %g", e.Coverage)
	}
	if e.Unit == "" {
		e.Unit = jobcast.UnitJob
	}
	if e.Unit != jobcast.UnitJob {
		bad("unit %q is not supported; use %q", e.Unit, jobcast.UnitJob)
	}
	if e.Seed == "" {
		e.Seed = e.ID
	}
	if e.Status == "" {
		e.Status = jobcast.ExperimentDraft
	}
	if !slices.Contains([]string{jobcast.ExperimentDraft, jobcast.ExperimentRunning, jobcast.ExperimentStopped}, e.Status) {
		bad("status %q must be draft, running or stopped", e.Status)
	}
	if e.MinUnitsPerArm == 0 {
		e.MinUnitsPerArm = DefaultMinUnitsPerArm
	}
	if e.MinUnitsPerArm < 1 {
		bad("minUnitsPerArm must be positive")
	}
	if ns := e.Namespace; ns != nil {
		if ns.Name == "" || !(ns.Start >= 0 && ns.Start < ns.End && ns.End <= 1) {
			bad("namespace needs a name and a range 0 <= start < end <= 1")
		}
	}
	for _, n := range e.Segment.NetworkType {
		if !slices.Contains(networkTypes, n) {
			bad("segment networkType %q must be one of %s", n, strings.Join(networkTypes, ", "))
		}
	}
	for name, r := range map[string]string{"osVersion": e.Segment.OSVersion, "appVersion": e.Segment.AppVersion} {
		if r == "" {
			continue
		}
		if _, err := parseRange(r); err != nil {
			bad("segment %s: %v", name, err)
		}
	}
	if len(errs) > 0 {
		return badRequest("%s", errors.Join(errs...).Error())
	}
	return nil
}

// checkUpdate refuses changes that would mix two experiments in one set of
// results: once an experiment has run, its parameter, unit, seed, arms and
// namespace are fixed. Coverage, segment and status may change; sticky
// assignment keeps the units already decided where they are.
func checkUpdate(old, e *jobcast.Experiment) error {
	if old.StartedAt.IsZero() {
		return nil
	}
	var changed []string
	if old.Parameter != e.Parameter {
		changed = append(changed, "parameter")
	}
	if old.Unit != e.Unit {
		changed = append(changed, "unit")
	}
	if old.Seed != e.Seed {
		changed = append(changed, "seed")
	}
	if !slices.EqualFunc(old.Variants, e.Variants, func(a, b jobcast.Variant) bool {
		return a.Name == b.Name && a.Value == b.Value && math.Abs(a.Weight-b.Weight) < 1e-9
	}) {
		changed = append(changed, "arms (control, variant, split or variants)")
	}
	if (old.Namespace == nil) != (e.Namespace == nil) || (old.Namespace != nil && *old.Namespace != *e.Namespace) {
		changed = append(changed, "namespace")
	}
	if len(changed) > 0 {
		return badRequest("experiment %s has run; its %s cannot change (create a new experiment instead)", e.ID, strings.Join(changed, ", "))
	}
	return nil
}

// checkConflicts refuses to run e beside another running experiment on the
// same parameter unless a namespace keeps them apart: a unit in both would
// get one value and pollute the other's results.
func checkConflicts(e *jobcast.Experiment, all []jobcast.Experiment) error {
	if e.Status != jobcast.ExperimentRunning {
		return nil
	}
	for _, o := range all {
		if o.ID == e.ID || o.Status != jobcast.ExperimentRunning || o.Parameter != e.Parameter {
			continue
		}
		a, b := e.Namespace, o.Namespace
		if a != nil && b != nil && a.Name == b.Name && (a.End <= b.Start || b.End <= a.Start) {
			continue
		}
		return badRequest("experiment %s already tests %s; put both in one namespace with disjoint ranges, or stop it first", o.ID, e.Parameter)
	}
	return nil
}
