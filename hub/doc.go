// Package hub serves the client side of jobcast: the /ws/progress WebSocket
// endpoint, one job subscription per job with local watchers, per-connection
// throttling, heartbeats and resume.
//
// Delivery never blocks on a client. Each connection has a bounded queue; a
// writer goroutine exists only while the queue has frames, so an idle
// connection costs one goroutine (its reader) and two timers. A connection
// whose queue overflows is closed as a slow consumer.
package hub
