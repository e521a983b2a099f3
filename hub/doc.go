// Package hub serves the client side of jobcast: the /ws/progress WebSocket
// endpoint, one job subscription per job with local watchers, per-connection
// throttling, heartbeats and resume.
//
// Delivery never blocks on a client. Each connection has a bounded queue; a
// writer goroutine exists only while the queue has frames. A connection
// whose queue overflows is closed as a slow consumer.
//
// Heartbeats: one scheduler per hub (heartbeat.go) keeps every
// connection's next ping, or the deadline of its unanswered one, in a heap
// on one timer of the hub's clock, and runs passes at most 100 ms apart:
// the pings due meanwhile go out together, each written at once from the
// pass when nothing else is queued for its connection (without waiting on
// the socket). A timer per connection woke the process for every ping and
// every deadline and started two goroutines per ping.
//
// # Reading: the poller
//
// An idle connection has no goroutine either. A goroutine blocked in Read
// for each connection cost 4 KiB of stack that never shrinks, the largest
// part of an idle connection's memory (docs/benchmarks.md). On Linux, once
// the handshake is done, the connection's socket joins one epoll set
// shared by the process (poll_linux.go), armed EPOLLIN|EPOLLRDHUP|
// EPOLLONESHOT. One poller goroutine waits on the set, and only while it
// holds a connection; it waits in Go's own netpoller (the set is
// registered as a file and read with a non-waiting epoll_wait), not in a
// blocking system call, which would keep a processor from the scheduler. When a socket is readable the poller starts a reader
// goroutine for it (at most maxReaders at once), which reads what the
// socket holds without waiting, acts on each complete frame, keeps an
// incomplete one for the next wake-up (an idle connection keeps none) and
// re-arms the socket. One-shot arming means one reader per connection at a
// time; re-arming reports data that came meanwhile at once.
//
// Elsewhere, and for a socket without a file descriptor, each connection
// has a reader goroutine of its own (readBlocking); Options.GoroutineReaders
// chooses it on Linux too. Both readers share the frame parser.
//
// Frames are parsed by the hub (read.go), not gorilla: gorilla's Conn reads
// through a buffer of its own and does not tell whether it already holds the
// next frame, so a connection read with it could not be left to wait on its
// socket. The parser makes gorilla's ReadMessage checks, in its order, with
// its close codes (1002 with gorilla's reasons, 1009 over the frame limit,
// the client's close code echoed), so that the close codes and the
// disconnected telemetry are what they were. Writes were already framed by
// the hub. The opening handshake is the hub's too (handshake.go), with
// gorilla's Upgrader's checks and answers: the Upgrader wrote its 101 on its
// own, and the first frames then took a second write(2).
//
// Ending a connection: its reader ends it when a read fails. A connection
// waiting in the poller has no reader, so whoever closes its socket (a
// failed write, shutdown, the close handshake's grace timer) ends it, by
// abort; conn.rs says which of the two it is, and the socket is closed
// before it is consulted so that neither is missed.
package hub
