// Package nats holds cluster mode's NATS implementations of jobcast's
// interfaces: a Broker over core subjects, which fans each job's messages
// out to every node, and a JobStore on JetStream, which keeps job state and
// the per-job message log that resuming clients replay.
//
// # Why state and log share one stream
//
// jobcast.JobStore.UpdateJob must check the job's revision, replace its
// state and append the update's non-progress messages to its log, all or
// nothing. JetStream gives that guarantee within one stream only: a KV
// bucket is itself a stream (one subject per key, at most one message per
// subject, revision = stream sequence), and a separate log stream would be
// a second commit point. Every ordering of two commits leaves a gap a crash
// or a lost race can fall into:
//
//   - log first, then the KV update: the loser of a revision race has
//     already logged messages with the seq numbers the winner is about to
//     use, so the log holds messages of a state that never existed (and
//     Nats-Msg-Id deduplication on job+seq would drop the winner's, not the
//     loser's);
//   - KV first, then the log: a crash between the two loses logged messages
//     that the state says were sent, so a resuming client silently misses a
//     job_started, an error or, worst, the terminal message.
//
// So the store keeps one stream (default JOBCAST_JOBS) with two subjects per
// job: <prefix>.job.<id> holds the state exactly as a KV key would (every
// write rolls the subject up, so it holds one message, and the state's
// revision is that message's stream sequence), and <prefix>.log.<id> holds
// the logged messages, one stream message per update (a JSON array),
// bounded by the stream's per-subject limit and max age. An update is one
// atomic batch (JetStream atomic batch publish, nats-server 2.12 or later):
// the log message first, then the state message carrying
// Nats-Expected-Last-Subject-Sequence = the caller's revision and
// Nats-Batch-Commit. (Packing an update's messages into one array keeps the
// batch far below the server's 1,000 messages per batch, which a producer
// batch of 1,000 error events would otherwise exceed. A server with as many
// batches in flight as it allows, 50 per stream, is retried.) The server applies the whole batch or none of it, and
// the revision check covers the log as well as the state. An update with no
// message to log (progress, token revocation) is a single conditional
// publish.
//
// The Broker is deliberately not durable: a message lost between nodes
// (a node restarting, a slow consumer) reaches its clients when they resume
// from the store, as in embedded mode.
package nats
