package nats

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

var _ jobcast.JobStore = (*JobStore)(nil)

// JobStoreConfig configures a JobStore. The zero value is usable.
type JobStoreConfig struct {
	// Stream is the JetStream stream holding state and logs (default
	// JOBCAST_JOBS).
	Stream string
	// Prefix is the subject prefix (default DefaultPrefix).
	Prefix string
	// MaxLoggedPerJob bounds each job's message log (the stream's
	// per-subject limit; default 10,000). It counts stream messages, and
	// each update that logs anything writes one (a JSON array of the
	// update's logged messages, split only past 256 KB): a job whose log
	// exceeds it loses its oldest updates' messages. A job's state subject
	// always holds one message, so the limit only bites logs.
	MaxLoggedPerJob int64
	// MaxAge is the stream's age limit (default 30 days). It is a safety net
	// under jobcast's own retention, which deletes finished jobs after
	// JobRetention: a job whose state was not written for MaxAge is gone,
	// so MaxAge must exceed the longest idle time of a running job and the
	// job retention.
	MaxAge time.Duration
	// Replicas is the stream's replication factor (default 1).
	Replicas int
	// Memory keeps the stream in memory instead of files: gone when the
	// server restarts. For tests and demos. Updates cost about the same on
	// files (one publish each, synced by the server's sync interval), except
	// the rare update that logs more than 256 KB: an atomic batch, which a
	// one-replica file stream stages in a file store of its own and syncs
	// (12-20 ms on the development machine).
	Memory bool
}

func (c *JobStoreConfig) defaults() {
	if c.Stream == "" {
		c.Stream = "JOBCAST_JOBS"
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.MaxLoggedPerJob <= 0 {
		c.MaxLoggedPerJob = 10_000
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 30 * 24 * time.Hour
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
}

// JobStore is a jobcast.JobStore on one JetStream stream; doc.go explains
// the layout and why state and log share the stream.
type JobStore struct {
	nc     *natsgo.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	cfg    JobStoreConfig
}

// NewJobStore creates or updates the stream and returns a JobStore on nc.
// The caller owns nc: Close does not close it.
func NewJobStore(ctx context.Context, nc *natsgo.Conn, cfg JobStoreConfig) (*JobStore, error) {
	cfg.defaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	storage := jetstream.FileStorage
	if cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:               cfg.Stream,
		Description:        "jobcast job state (<prefix>.job.<id>, one message each) and message logs (<prefix>.log.<id>)",
		Subjects:           []string{cfg.Prefix + ".job.*", cfg.Prefix + ".log.*"},
		Storage:            storage,
		Retention:          jetstream.LimitsPolicy,
		Discard:            jetstream.DiscardOld,
		MaxMsgsPerSubject:  cfg.MaxLoggedPerJob,
		MaxAge:             cfg.MaxAge,
		Replicas:           cfg.Replicas,
		AllowRollup:        true,
		AllowAtomicPublish: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", cfg.Stream, err)
	}
	return &JobStore{nc: nc, js: js, stream: stream, cfg: cfg}, nil
}

func (s *JobStore) stateSubject(id string) string { return s.cfg.Prefix + ".job." + token(id) }
func (s *JobStore) logSubject(id string) string   { return s.cfg.Prefix + ".log." + token(id) }

// jobSubjects matches both subjects of a job. The job's revision is the
// stream sequence of the last message on them: every write checks it, so a
// state write and a logged update conflict with each other.
func (s *JobStore) jobSubjects(id string) string { return s.cfg.Prefix + ".*." + token(id) }

// pubAck is JetStream's reply to a publish or a batch commit.
type pubAck struct {
	Stream   string              `json:"stream"`
	Sequence uint64              `json:"seq"`
	Error    *jetstream.APIError `json:"error"`
}

// errWrongLastSeq is a failed revision check.
var errWrongLastSeq = errors.New("wrong last subject sequence")

// errBatchRefused: the server refused an atomic batch as a whole, and
// nothing of it was stored, so it may be sent again. It had as many batches
// in flight as it allows (50 per stream by default), which it answers with
// "too many in flight" to the batch's first message; that message has no
// reply subject, so the commit then hears that the batch is incomplete.
var errBatchRefused = errors.New("atomic batch refused")

// JetStream error codes of errBatchRefused.
const (
	codeBatchIncomplete = 10176
	codeTooManyInFlight = 10210
)

// requestTimeout bounds a write whose context has no deadline.
const requestTimeout = 10 * time.Second

// request sends m and decodes JetStream's acknowledgement.
func (s *JobStore) request(ctx context.Context, m *natsgo.Msg) (uint64, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, requestTimeout)
		defer cancel()
	}
	ctx, release, err := whileConnected(ctx, s.nc)
	if err != nil {
		return 0, fmt.Errorf("publish to %s: %w", m.Subject, err)
	}
	defer release()
	reply, err := s.nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		return 0, fmt.Errorf("publish to %s: %w", m.Subject, outageError(ctx, err))
	}
	var ack pubAck
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return 0, fmt.Errorf("decode ack from %s: %w", m.Subject, err)
	}
	if ack.Error != nil {
		switch ack.Error.ErrorCode {
		case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
			return 0, errWrongLastSeq
		case codeTooManyInFlight, codeBatchIncomplete:
			return 0, fmt.Errorf("%w: %w", errBatchRefused, ack.Error)
		}
		return 0, fmt.Errorf("publish to %s: %w", m.Subject, ack.Error)
	}
	if ack.Stream != s.cfg.Stream {
		return 0, fmt.Errorf("publish to %s: stored in stream %q, want %q", m.Subject, ack.Stream, s.cfg.Stream)
	}
	return ack.Sequence, nil
}

// stateMsg is a conditional, rolling-up write of job's state.
func (s *JobStore) stateMsg(job *jobcast.Job, prevRev int64) (*natsgo.Msg, error) {
	data, err := json.Marshal(job)
	if err != nil {
		return nil, fmt.Errorf("encode job: %w", err)
	}
	m := natsgo.NewMsg(s.stateSubject(job.JobID))
	m.Data = data
	s.expectRev(m, job.JobID, prevRev)
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	return m, nil
}

// expectRev makes m conditional on the job's revision being rev.
func (s *JobStore) expectRev(m *natsgo.Msg, id string, rev int64) {
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatInt(rev, 10))
	m.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, s.jobSubjects(id))
}

// loggedUpdate is a log message that carries the job's state as of the
// update: an update that logs one chunk is this one message, atomic by
// nature. Log messages written before it (and the chunks of a bigger
// update) are bare JSON arrays of envelopes, the state being on the state
// subject.
type loggedUpdate struct {
	State json.RawMessage     `json:"state,omitempty"`
	Log   []protocol.Envelope `json:"log"`
}

// decodeLogged decodes a log message of either form.
func decodeLogged(data []byte) (loggedUpdate, error) {
	var u loggedUpdate
	if b := bytes.TrimLeft(data, " \t\r\n"); len(b) > 0 && b[0] == '[' {
		return u, json.Unmarshal(data, &u.Log)
	}
	return u, json.Unmarshal(data, &u)
}

// CreateJob implements jobcast.JobStore: a state write expecting no message
// on the job's subjects.
func (s *JobStore) CreateJob(ctx context.Context, job *jobcast.Job) error {
	m, err := s.stateMsg(job, 0)
	if err != nil {
		return err
	}
	seq, err := s.request(ctx, m)
	if errors.Is(err, errWrongLastSeq) {
		return jobcast.ErrJobExists
	}
	if err != nil {
		return err
	}
	job.Rev = int64(seq)
	return nil
}

// GetJob implements jobcast.JobStore: one read of the last message on the
// job's two subjects, which holds its current state whichever it is.
func (s *JobStore) GetJob(ctx context.Context, id string) (*jobcast.Job, error) {
	ctx, release, err := whileConnected(ctx, s.nc)
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	defer release()
	raw, err := s.stream.GetLastMsgForSubject(ctx, s.jobSubjects(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, jobcast.ErrJobNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, outageError(ctx, err))
	}
	data := raw.Data
	if raw.Subject != s.stateSubject(id) {
		u, err := decodeLogged(raw.Data)
		if err != nil {
			return nil, fmt.Errorf("decode logged update of %s: %w", id, err)
		}
		data = u.State
		if data == nil {
			// Never the last message of a job that has a state: a
			// batch writes its state after its chunks.
			return nil, jobcast.ErrJobNotFound
		}
	}
	var job jobcast.Job
	if err := json.Unmarshal(data, &job); err != nil {
		return nil, fmt.Errorf("decode job %s: %w", id, err)
	}
	job.Rev = int64(raw.Sequence)
	return &job, nil
}

// UpdateJob implements jobcast.JobStore, with one conditional publish: of
// the state alone when nothing is logged, else of the logged messages with
// the state in one log message. An update that logs more than one chunk
// (past 256 KB) is an atomic batch, the chunks then the state; see doc.go.
func (s *JobStore) UpdateJob(ctx context.Context, job *jobcast.Job, prevRev int64, msgs []*jobcast.Message) error {
	if prevRev <= 0 {
		// 0 would mean "no state yet" to the server and create the job.
		return s.missingOrConflict(ctx, job.JobID)
	}
	state, err := s.stateMsg(job, prevRev)
	if err != nil {
		return err
	}
	chunks, err := logChunks(msgs)
	if err != nil {
		return err
	}
	var seq uint64
	if len(chunks) == 1 {
		seq, err = s.request(ctx, s.loggedMsg(job.JobID, prevRev, state.Data, chunks[0]))
	} else {
		seq, err = s.commit(ctx, job.JobID, state, chunks)
	}
	if errors.Is(err, errWrongLastSeq) {
		return s.missingOrConflict(ctx, job.JobID)
	}
	if err != nil {
		return err
	}
	job.Rev = int64(seq)
	return nil
}

// maxChunk bounds one log message's payload, well under NATS's default
// 1 MB max payload.
const maxChunk = 256 << 10

// logChunks packs an update's non-progress messages into JSON arrays of at
// most maxChunk bytes (one message alone may exceed it): an atomic batch
// holds at most 1,000 messages, and a producer batch may log 1,000.
func logChunks(msgs []*jobcast.Message) ([][]byte, error) {
	var chunks [][]byte
	var cur []byte
	for _, m := range msgs {
		if m.Type == protocol.TypeJobProgress {
			continue
		}
		frame := m.Frame
		if frame == nil {
			var err error
			if frame, err = json.Marshal(&m.Envelope); err != nil {
				return nil, fmt.Errorf("encode %s message: %w", m.Type, err)
			}
		}
		if len(cur) > 0 && len(cur)+len(frame)+2 > maxChunk {
			chunks = append(chunks, append(cur, ']'))
			cur = nil
		}
		if len(cur) == 0 {
			cur = append(make([]byte, 0, min(maxChunk, 2*len(frame)+2)), '[')
		} else {
			cur = append(cur, ',')
		}
		cur = append(cur, frame...)
	}
	if len(cur) > 0 {
		chunks = append(chunks, append(cur, ']'))
	}
	return chunks, nil
}

// loggedMsg is an update that logs one chunk: a loggedUpdate on the log
// subject, conditional on the job's revision.
func (s *JobStore) loggedMsg(id string, prevRev int64, state, chunk []byte) *natsgo.Msg {
	m := natsgo.NewMsg(s.logSubject(id))
	data := make([]byte, 0, len(state)+len(chunk)+20)
	data = append(data, `{"state":`...)
	data = append(data, state...)
	data = append(data, `,"log":`...)
	data = append(data, chunk...)
	m.Data = append(data, '}')
	s.expectRev(m, id, prevRev)
	return m
}

// commit writes state, and the log chunks before it in one atomic batch,
// and returns the state's new sequence. A refused batch (errBatchRefused)
// is sent again, under a new id, until ctx ends.
func (s *JobStore) commit(ctx context.Context, id string, state *natsgo.Msg, chunks [][]byte) (uint64, error) {
	if len(chunks) == 0 {
		return s.request(ctx, state)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, requestTimeout)
		defer cancel()
	}
	wait := time.Millisecond
	for {
		batch := nuid.Next()
		if !s.nc.IsConnected() {
			// The chunks would wait in the reconnect buffer and be
			// sent, uncommitted, after the outage.
			return 0, fmt.Errorf("commit job %s: %w: %w", id, errUnavailable, natsgo.ErrDisconnected)
		}
		for i, c := range chunks {
			lm := natsgo.NewMsg(s.logSubject(id))
			lm.Data = c
			lm.Header.Set(batchIDHeader, batch)
			lm.Header.Set(batchSeqHeader, strconv.Itoa(i+1))
			if err := s.nc.PublishMsg(lm); err != nil {
				return 0, fmt.Errorf("publish to %s: %w", lm.Subject, err)
			}
		}
		state.Header.Set(batchIDHeader, batch)
		state.Header.Set(batchSeqHeader, strconv.Itoa(len(chunks)+1))
		state.Header.Set(batchCommitHeader, "1")
		seq, err := s.request(ctx, state)
		if !errors.Is(err, errBatchRefused) {
			return seq, err
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("commit job %s: %w", id, err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// Headers of JetStream atomic batch publishing (ADR-50); nats.go v1.55 has
// the stream setting but no publisher for it.
const (
	batchIDHeader     = "Nats-Batch-Id"
	batchSeqHeader    = "Nats-Batch-Sequence"
	batchCommitHeader = "Nats-Batch-Commit"
)

// missingOrConflict tells a failed revision check on a job that does not
// exist from one on a job that moved on.
func (s *JobStore) missingOrConflict(ctx context.Context, id string) error {
	_, err := s.GetJob(ctx, id)
	switch {
	case errors.Is(err, jobcast.ErrJobNotFound):
		return jobcast.ErrJobNotFound
	case err != nil:
		return err
	}
	return jobcast.ErrConflict
}

// Messages implements jobcast.JobStore by reading the job's log subject
// through a short-lived ordered consumer.
func (s *JobStore) Messages(ctx context.Context, jobID string, afterSeq int64) ([]protocol.Envelope, error) {
	ctx, release, err := whileConnected(ctx, s.nc)
	if err != nil {
		return nil, fmt.Errorf("read the log of %s: %w", jobID, err)
	}
	defer release()
	out := []protocol.Envelope{}
	// The log's last sequence, from the stream's leader, is where the
	// scan must get to: a consumer's answer alone may end early (see
	// scan). An empty log needs no consumer.
	last, err := s.stream.GetLastMsgForSubject(ctx, s.logSubject(jobID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the log of %s: %w", jobID, outageError(ctx, err))
	}
	err = s.scan(ctx, []string{s.logSubject(jobID)}, jetstream.DeliverAllPolicy, last.Sequence, func(m jetstream.Msg, _ *jetstream.MsgMetadata) error {
		u, err := decodeLogged(m.Data())
		if err != nil {
			return fmt.Errorf("decode logged messages of %s: %w", jobID, err)
		}
		for _, env := range u.Log {
			if env.Seq > afterSeq {
				out = append(out, env)
			}
		}
		return nil
	})
	if err != nil {
		return nil, outageError(ctx, err)
	}
	// The log is appended in seq order under the revision check; sorting
	// guards the contract rather than fixing a known disorder.
	sort.SliceStable(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

// scanWait bounds how long scan waits for a consumer to deliver up to the
// sequence it was told exists.
const scanWait = 2 * time.Second

// scan calls fn with every message on subjects that policy delivers,
// reading until the consumer has nothing pending and, when until is not 0,
// it has delivered stream sequence until.
//
// A new consumer's count of pending messages is not enough: on a
// replicated stream whose leader was settling, tests read a job's log
// empty right after its update had been acknowledged. So Messages passes
// the log's last sequence, read from the leader first, and a scan that
// falls short of it reads again, and fails (E_UNAVAILABLE) after scanWait
// rather than return a log with its end missing.
func (s *JobStore) scan(ctx context.Context, subjects []string, policy jetstream.DeliverPolicy, until uint64, fn func(m jetstream.Msg, md *jetstream.MsgMetadata) error) error {
	cons, err := s.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects,
		DeliverPolicy:  policy,
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", subjects[0], err)
	}
	var seen uint64
	start, wait := time.Now(), time.Millisecond
	for {
		// Each fetch of an ordered consumer creates it afresh from
		// where the last one stopped.
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			return fmt.Errorf("read %s: %w", subjects[0], err)
		}
		n, drained := 0, false
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("read %s: %w", subjects[0], err)
			}
			if err := fn(m, md); err != nil {
				return err
			}
			seen = max(seen, md.Sequence.Stream)
			drained = md.NumPending == 0
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("read %s: %w", subjects[0], err)
		}
		if seen >= until && (drained || n == 0 && (until > 0 || pendingNone(cons))) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if n > 0 && !drained {
			continue
		}
		// The consumer stopped short of what exists: read again.
		if time.Since(start) > scanWait {
			return fmt.Errorf("read %s: %w: delivered up to sequence %d of %d", subjects[0], errUnavailable, seen, until)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// pendingNone: the consumer had nothing to deliver when it was created.
func pendingNone(cons jetstream.Consumer) bool {
	info := cons.CachedInfo()
	return info != nil && info.NumPending == 0
}

// DeleteFinishedBefore implements jobcast.JobStore: it reads the last
// message of every job subject and log subject, takes each job's state from
// the later of its two, and purges both subjects of the jobs that finished
// before t.
func (s *JobStore) DeleteFinishedBefore(ctx context.Context, t time.Time) (int, error) {
	type latest struct {
		seq      uint64
		finished bool
		id       string
	}
	jobs := map[string]latest{} // by subject token
	subjects := []string{s.cfg.Prefix + ".job.*", s.cfg.Prefix + ".log.*"}
	err := s.scan(ctx, subjects, jetstream.DeliverLastPerSubjectPolicy, 0, func(m jetstream.Msg, md *jetstream.MsgMetadata) error {
		subject, seq, data := m.Subject(), md.Sequence.Stream, m.Data()
		tok := subject[strings.LastIndexByte(subject, '.')+1:]
		if seq < jobs[tok].seq {
			return nil
		}
		if subject != s.cfg.Prefix+".job."+tok {
			u, err := decodeLogged(data)
			if err != nil {
				return fmt.Errorf("decode logged update: %w", err)
			}
			if u.State == nil {
				return nil // a log message of a batch: its state came after it
			}
			data = u.State
		}
		var job jobcast.Job
		if err := json.Unmarshal(data, &job); err != nil {
			return fmt.Errorf("decode job: %w", err)
		}
		jobs[tok] = latest{seq: seq, finished: !job.FinishedAt.IsZero() && job.FinishedAt.Before(t), id: job.JobID}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, j := range jobs {
		if !j.finished {
			continue
		}
		// One purge of both subjects: a job never loses its log and
		// keeps an older state, nor the reverse.
		if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(s.jobSubjects(j.id))); err != nil {
			return n, fmt.Errorf("purge job %s: %w", j.id, err)
		}
		n++
	}
	return n, nil
}

// Close implements jobcast.JobStore. The connection belongs to the caller.
func (s *JobStore) Close() error { return nil }
