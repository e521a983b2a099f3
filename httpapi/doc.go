// Package httpapi is jobcast's HTTP surface: the producer API of SPEC §2,
// health checks, admin endpoints, and the mount point of the WebSocket hub.
// Every error answers with the same JSON shape, {"error":{"code","message"}}.
package httpapi
