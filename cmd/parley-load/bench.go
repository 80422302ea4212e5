package main

import (
	"context"
	"errors"
)

// runBench runs the scenarios of docs/performance.md.
func runBench(ctx context.Context, args []string) error {
	return errors.New("bench: not written yet")
}
