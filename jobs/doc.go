// Package jobs is the job service: it validates producer input, runs events
// through the job state machine, persists the result and publishes the
// messages to the broker, in that order, so that a message a client sees is
// always one a resuming client can be replayed.
package jobs
