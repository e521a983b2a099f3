// Package protocol is the jobcast wire protocol: the JSON envelope every
// WebSocket frame carries, the message types, payload shapes, error codes and
// close codes.
//
// It is deliberately small and free of server dependencies (no cgo, no
// storage) so that client SDKs and tools can import it without pulling the
// server into their builds. docs/protocol.md is the prose version of this
// package for clients in other languages.
package protocol
