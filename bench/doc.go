// Package bench holds jobcast's load-generating WebSocket clients and the
// benchmarks that need more than one process.
//
// The clients are raw gorilla/websocket readers, far cheaper than the SDK
// watcher: they count job_progress frames, answer pings, and optionally
// record publish-to-receive latency from a "sentNs" field the publisher puts
// in the progress payload. Publishers and clients pace each other with a
// window of outstanding rounds, so that no connection's bounded server queue
// overflows and a benchmark never turns into a slow-consumer test.
//
// One process may hold at most 20,000 open files here, and a connection on
// loopback costs one in the server and one in the client. So the 10,000-
// connection benchmarks run the clients (BenchmarkFanout) or the server
// (BenchmarkIdleConnections) in a second process; the test binary re-executes
// itself as the client process. See docs/benchmarks.md for the commands.
package bench
