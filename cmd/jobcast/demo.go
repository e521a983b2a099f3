package main

import (
	"context"
	"errors"
	"io"
)

func runDemo(ctx context.Context, args []string, env envLookup, stdout, stderr io.Writer) error {
	return errors.New("demo: not yet")
}
