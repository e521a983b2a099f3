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
// job: <prefix>.job.<id> holds the state as a KV key would (every state
// write rolls the subject up, so it holds one message), and <prefix>.log.<id>
// holds the logged messages, one stream message per update that logs
// anything, bounded by the stream's per-subject limit and max age. The
// job's revision is the stream sequence of the last message on either
// subject (<prefix>.*.<id>), and every write is conditional on it
// (Nats-Expected-Last-Subject-Sequence with
// Nats-Expected-Last-Subject-Sequence-Subject = <prefix>.*.<id>), so a
// state write and a logged update see each other. A sweep purges both
// subjects of a finished job in one purge (filter <prefix>.*.<id>), so a
// job never keeps an older state without its log.
//
// # One message per update
//
// An update with nothing to log (progress, token revocation) is one
// conditional publish of the state. An update that logs messages is one
// conditional publish too, on the log subject: {"state":…,"log":[…]}, the
// new state with the update's logged messages packed into one JSON array.
// One message is atomic by nature, the revision check covers it, and the
// job's current state is whichever of its two subjects was written last
// (GetJob reads the last message on <prefix>.*.<id>).
//
// Only an update that logs more than 256 KB (a producer batch of 1,000
// large errors) is an atomic batch (JetStream atomic batch publish,
// nats-server 2.12 or later): bare JSON arrays of at most 256 KB on the log
// subject, then the state message, which carries the revision check and
// Nats-Batch-Commit; the server applies all or nothing. Every logged update
// was such a batch before, and the reader still takes those bare arrays;
// nodes from before read the state subject alone and check the revision on
// it, so they must not write to the stream beside later ones.
// Batches are left to that case because they are slow: on a
// one-replica file stream the server stages each batch in a file store of
// its own (a directory, metadata files written with a sync, a sync at
// commit, a removal), in the stream's one ingest goroutine, so logged
// updates ran at about 50 per second per stream whatever the number of
// writers. A server with as many batches in flight as it allows (50 per
// stream) refuses one whole, and the store sends it again.
//
// The Broker is deliberately not durable: a message lost between nodes
// (a node restarting, a slow consumer) reaches its clients when they resume
// from the store, as in embedded mode.
package nats
