package gql

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jobcast/jobcast/experiment"
	"github.com/jobcast/jobcast/protocol"
)

// ExperimentResults answers the experimentResults query: the experiment
// service.
type ExperimentResults interface {
	Results(ctx context.Context, id string) (*experiment.Results, error)
}

// WithExperiments serves experimentResults from src (without it the query
// is an error).
func WithExperiments(src ExperimentResults) Option {
	return func(r *resolver) { r.experiments = src }
}

// JSON is the schema's JSON scalar: a document passed through as it is.
type JSON struct{ v any }

// ImplementsGraphQLType maps JSON to the schema's JSON scalar.
func (JSON) ImplementsGraphQLType(name string) bool { return name == "JSON" }

// UnmarshalGraphQL is never used: JSON is only an output.
func (*JSON) UnmarshalGraphQL(any) error { return errors.New("JSON is an output type") }

// MarshalJSON writes the document.
func (j JSON) MarshalJSON() ([]byte, error) { return json.Marshal(j.v) }

// ExperimentResults resolves experimentResults(id): the same document as
// GET /v1/experiments/{id}/results.
func (r *resolver) ExperimentResults(ctx context.Context, args struct{ ID string }) (JSON, error) {
	if r.experiments == nil {
		return JSON{}, &queryError{code: protocol.ErrUnavailable, msg: "experiments are not available on this server"}
	}
	res, err := r.experiments.Results(ctx, args.ID)
	if err != nil {
		return JSON{}, r.fail(ctx, "experimentResults", err)
	}
	return JSON{v: res}, nil
}
