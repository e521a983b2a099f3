// Package client is the Go SDK for jobcast: a WebSocket client that watches
// one job's progress and survives the network (heartbeats, reconnects with
// capped exponential backoff and jitter, resume by lastSeq, duplicate
// dropping), and a producer client for the HTTP API.
//
// It imports only the protocol package and a WebSocket library: no cgo and
// no server code, so it builds for any target Go supports.
package client
