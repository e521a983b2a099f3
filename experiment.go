package jobcast

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// Experiment statuses. A draft enrolls nobody; a running experiment enrolls
// new units; a stopped one enrolls nobody, and units it enrolled get the
// default value again on their next connection, while its results stay
// readable.
const (
	ExperimentDraft   = "draft"
	ExperimentRunning = "running"
	ExperimentStopped = "stopped"
)

// UnitJob is the only experiment unit so far: the job, which is also the
// session the transport metrics are counted per. Every connection of a job
// gets the same values.
const UnitJob = "job"

// Names of the transport parameters experiments can set (SPEC §7).
const (
	ParamHeartbeatInterval = "heartbeat_interval_ms"
	ParamThrottle          = "throttle_ms"
)

// Parameter is one entry of the registry of experiment parameters: its
// name, the bounds a value must keep, and the default in force without an
// experiment. The bounds keep an experiment from taking a fleet somewhere
// no config would be allowed to (a 10 ms heartbeat, an hour-long throttle).
type Parameter struct {
	Name        string `json:"name"`
	Unit        string `json:"unit"`
	Min         int64  `json:"min"`
	Max         int64  `json:"max"`
	Description string `json:"description"`
	// Default reads the value the server uses without an experiment.
	Default func(*Config) int64 `json:"-"`
}

// Parameters is the registry. Adding a parameter is one entry here plus
// the line where the consumer applies ParamValues.Value (hub/experiment.go
// for connection parameters); see docs/experiments.md.
var Parameters = []Parameter{
	{
		Name: ParamHeartbeatInterval, Unit: "ms", Min: 100, Max: 300_000,
		Description: "interval between server pings; the ready frame's heartbeatIntervalMs",
		Default:     func(c *Config) int64 { return c.HeartbeatInterval.Milliseconds() },
	},
	{
		Name: ParamThrottle, Unit: "ms", Min: 0, Max: 60_000,
		Description: "minimum gap between progress frames per connection; the ready frame's throttleMs",
		Default:     func(c *Config) int64 { return c.EffectiveThrottle().Milliseconds() },
	},
}

// LookupParameter returns the registry entry named name.
func LookupParameter(name string) (Parameter, bool) {
	i := slices.IndexFunc(Parameters, func(p Parameter) bool { return p.Name == name })
	if i < 0 {
		return Parameter{}, false
	}
	return Parameters[i], true
}

// Experiment is an A/B test of one transport parameter (SPEC §7). The API,
// the CLI and the YAML file take and return this shape. Two arms can be
// written as control, variant and split; N arms as variants. The
// experiment package normalizes one form into the other and validates.
type Experiment struct {
	ID          string `json:"id" yaml:"id"`
	Description string `json:"description,omitempty" yaml:"description"`
	Parameter   string `json:"parameter" yaml:"parameter"`
	// Control and Variant are the two arms' values; Split is the share of
	// enrolled units that get Variant (default 0.5).
	Control *int64  `json:"control,omitempty" yaml:"control"`
	Variant *int64  `json:"variant,omitempty" yaml:"variant"`
	Split   float64 `json:"split,omitempty" yaml:"split"`
	// Variants are the arms with their weights; the first is the control
	// every other is compared with.
	Variants []Variant `json:"variants,omitempty" yaml:"variants"`
	// Coverage is the share of eligible units enrolled (default 1). Raising
	// it enrolls more units and never moves one already enrolled.
	Coverage float64 `json:"coverage" yaml:"coverage"`
	// Segment restricts the experiment to some clients; units outside it
	// get the default and are not enrolled.
	Segment Segment `json:"segment" yaml:"segment"`
	// Namespace makes experiments mutually exclusive: experiments in the
	// same namespace with disjoint ranges never share a unit.
	Namespace *Namespace `json:"namespace,omitempty" yaml:"namespace"`
	// Unit is what is randomized: "job" (the default and only unit).
	Unit string `json:"unit" yaml:"unit"`
	// Seed salts the hash (default: the id). Two experiments with different
	// seeds assign independently.
	Seed   string `json:"seed,omitempty" yaml:"seed"`
	Status string `json:"status" yaml:"status"`
	// MinUnitsPerArm is how many units every arm needs before the analysis
	// calls anything significant (default 1000).
	MinUnitsPerArm int `json:"minUnitsPerArm,omitempty" yaml:"minUnitsPerArm"`

	CreatedAt time.Time `json:"createdAt,omitzero" yaml:"-"`
	UpdatedAt time.Time `json:"updatedAt,omitzero" yaml:"-"`
	// StartedAt is when the experiment first ran: from then on the arms
	// and the parameter are frozen, since changing them would mix two
	// experiments in one set of results.
	StartedAt time.Time `json:"startedAt,omitzero" yaml:"-"`
	StoppedAt time.Time `json:"stoppedAt,omitzero" yaml:"-"`
}

// Variant is one arm of an experiment.
type Variant struct {
	Name   string  `json:"name" yaml:"name"`
	Value  int64   `json:"value" yaml:"value"`
	Weight float64 `json:"weight" yaml:"weight"`
}

// Namespace is a named range of [0, 1): an experiment only sees units whose
// namespace hash falls in its range.
type Namespace struct {
	Name  string  `json:"name" yaml:"name"`
	Start float64 `json:"start" yaml:"start"`
	End   float64 `json:"end" yaml:"end"`
}

// Segment selects clients. Empty fields match everything; a list matches
// any of its entries. Version ranges are semver-aware constraints such as
// ">=3.4.0 <4" or "iOS >=17" (an OS name first restricts the platform);
// "||" separates alternatives.
type Segment struct {
	NetworkType StringList `json:"networkType,omitempty" yaml:"networkType"`
	Pipeline    StringList `json:"pipeline,omitempty" yaml:"pipeline"`
	// DeviceModel entries match exactly, or by prefix when they end in '*'.
	DeviceModel StringList `json:"deviceModel,omitempty" yaml:"deviceModel"`
	OSVersion   string     `json:"osVersion,omitempty" yaml:"osVersion"`
	AppVersion  string     `json:"appVersion,omitempty" yaml:"appVersion"`
}

// StringList is a list that JSON and YAML may also write as one string.
type StringList []string

// UnmarshalJSON accepts "a" as well as ["a", "b"].
func (l *StringList) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		s, err := strconv.Unquote(string(b))
		if err != nil {
			return err
		}
		*l = StringList{s}
		return nil
	}
	var xs []string
	if err := json.Unmarshal(b, &xs); err != nil {
		return err
	}
	*l = xs
	return nil
}

// UnmarshalYAML accepts a scalar as well as a sequence.
func (l *StringList) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err == nil {
		*l = StringList{s}
		return nil
	}
	var xs []string
	if err := unmarshal(&xs); err != nil {
		return err
	}
	*l = xs
	return nil
}

// ExperimentUnit is what assignment knows of a connection: the unit id
// (the job id) and the client context segments select on.
type ExperimentUnit struct {
	UnitID      string
	Pipeline    string
	AppVersion  string
	OSVersion   string
	NetworkType string
	DeviceModel string
}

// AssignedParam is one parameter value an experiment set for a unit.
type AssignedParam struct {
	Param        string
	Value        int64
	ExperimentID string
	Variant      string
	// Expose is true on the unit's first connection in the experiment: the
	// connection that applies the value logs the one exposure event.
	Expose bool
}

// ParamValues are the experiment values of one connection; parameters
// without an entry keep their defaults.
type ParamValues []AssignedParam

// Value returns the value assigned to param.
func (v ParamValues) Value(param string) (int64, bool) {
	for _, p := range v {
		if p.Param == param {
			return p.Value, true
		}
	}
	return 0, false
}

// ExposureEvent is the telemetry event of an applied value; the caller
// fills in the connection's fields.
func (p AssignedParam) ExposureEvent(e Event) Event {
	e.Event = EventExposure
	e.ExperimentID, e.Variant, e.Param = p.ExperimentID, p.Variant, p.Param
	e.Value = strconv.FormatInt(p.Value, 10)
	return e
}

// ParamAssigner decides the transport parameters of a new connection. The
// hub calls it before sending ready; an error leaves the defaults in force
// (an experiment must never keep a client from its job).
type ParamAssigner interface {
	Assign(ctx context.Context, u ExperimentUnit) (ParamValues, error)
}

// Assignment is a unit's fixed decision in one experiment: enrolled or not
// (outside the segment, the coverage or the namespace), and in which arm.
// It is taken at the unit's first connection while the experiment runs and
// never changes.
type Assignment struct {
	ExperimentID string    `json:"experimentId"`
	UnitID       string    `json:"unitId"`
	Enrolled     bool      `json:"enrolled"`
	Variant      string    `json:"variant,omitempty"`
	AssignedAt   time.Time `json:"assignedAt"`
	// New is set by ExperimentStore.StickAssignments on the assignments
	// that call stored (and so the unit's first exposure).
	New bool `json:"-"`
}

// ExperimentStore keeps experiments and the units' sticky assignments with
// the rest of the configuration (SQLite embedded, the cluster store later).
type ExperimentStore interface {
	ListExperiments(ctx context.Context) ([]Experiment, error)
	// GetExperiment returns ErrExperimentNotFound for an unknown id.
	GetExperiment(ctx context.Context, id string) (*Experiment, error)
	// CreateExperiment returns ErrExperimentExists for a taken id.
	CreateExperiment(ctx context.Context, e *Experiment) error
	// UpdateExperiment replaces a stored experiment.
	UpdateExperiment(ctx context.Context, e *Experiment) error
	// StickAssignments returns unit's stored assignment in each experiment
	// of proposed, storing the proposed one (with New set) where there was
	// none. Concurrent calls for one unit, on any node, agree: the first
	// stored wins.
	StickAssignments(ctx context.Context, unitID string, proposed []Assignment) ([]Assignment, error)
	// DeleteAssignmentsBefore deletes assignments taken before t: their
	// jobs are gone and will not reconnect.
	DeleteAssignmentsBefore(ctx context.Context, t time.Time) (int64, error)
}

// Experiment error codes. They answer 404 and 409 (experiment/http.go).
const (
	CodeExperimentNotFound = "E_EXPERIMENT_NOT_FOUND"
	CodeExperimentExists   = "E_EXPERIMENT_EXISTS"
)

// Errors of experiment stores.
var (
	ErrExperimentNotFound = &Error{Code: CodeExperimentNotFound, Message: "experiment not found"}
	ErrExperimentExists   = &Error{Code: CodeExperimentExists, Message: "an experiment with this id already exists"}
)
