package experiment

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/jobcast/jobcast"
)

// LoadFile reads a YAML file of experiments:
//
//	experiments:
//	  - id: heartbeat-cellular-v1
//	    parameter: heartbeat_interval_ms
//	    control: 30000
//	    variant: 45000
//	    segment: {networkType: cellular}
//	    status: running
//
// Fields left out take the API's defaults. Each is validated.
func LoadFile(path string) ([]jobcast.Experiment, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("experiments file: %w", err)
	}
	var doc struct {
		Experiments []yaml.Node `yaml:"experiments"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("experiments file %s: %w", path, err)
	}
	out := make([]jobcast.Experiment, 0, len(doc.Experiments))
	for i := range doc.Experiments {
		e := Defaults()
		if err := doc.Experiments[i].Decode(&e); err != nil {
			return nil, fmt.Errorf("experiments file %s: experiment %d: %w", path, i+1, err)
		}
		if err := Normalize(&e); err != nil {
			return nil, fmt.Errorf("experiments file %s: experiment %q: %s", path, e.ID, jobcast.ErrorMessage(err))
		}
		out = append(out, e)
	}
	return out, nil
}

// Apply stores each experiment, creating or replacing it: the file is the
// source of truth for the experiments it lists, and the API for the rest.
func (s *Service) Apply(ctx context.Context, exps []jobcast.Experiment) error {
	for _, e := range exps {
		if _, err := s.Put(ctx, e); err != nil {
			return fmt.Errorf("experiment %s: %s", e.ID, jobcast.ErrorMessage(err))
		}
	}
	return nil
}
