package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/jobcast/jobcast"
)

var _ jobcast.Broker = (*Broker)(nil)

// noFrameHeader marks a message published without a frame (internal
// messages such as jobcast.MessageRevoked are never sent to clients), so the
// receiving node rebuilds it exactly: envelope, nil frame.
const noFrameHeader = "Jobcast-No-Frame"

// Broker is a jobcast.Broker on NATS core subjects: each job's messages go to
// <prefix>.msg.<id>, and every node subscribed to the job receives them.
// Core NATS is at-most-once; clients that miss a message catch up from the
// JobStore when they resume, as they do after any disconnect.
type Broker struct {
	nc     *natsgo.Conn
	prefix string
	log    *slog.Logger

	// store, when set (CatchUpFrom), is where subscriptions catch up on
	// the messages NATS lost; subs are the subscriptions to catch up.
	store jobcast.JobStore
	mu    sync.Mutex
	subs  map[*subscription]struct{}
}

// subscription is one Subscribe's delivery state, for catching up.
type subscription struct {
	jobID string
	fn    func(*jobcast.Message)
	// mu orders live delivery and catch-up, so fn sees seqs in order.
	mu sync.Mutex
	// last is the highest seq handed to fn (0: none yet).
	last int64
}

// NewBroker returns a Broker on nc publishing under prefix (DefaultPrefix
// when empty). The caller owns nc and closes it after the broker's last use.
func NewBroker(nc *natsgo.Conn, prefix string, log *slog.Logger) *Broker {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Broker{nc: nc, prefix: prefix, log: log}
}

// catchUpTimeout bounds one subscription's catch-up reads.
const catchUpTimeout = 5 * time.Second

// CatchUpFrom makes b deliver the job messages NATS lost, read from store
// (the job store on the same NATS), and returns b. Core NATS is
// at-most-once: while a node reconnects, what other nodes publish is not
// delivered to it, and its clients stay connected, so they would miss those
// messages (an acknowledged error message, or the terminal one, leaving the
// client waiting) until they resume. With a store, each subscription
// catches up after every reconnect, and whenever a message's seq skips
// ahead of the last one delivered (a message lost, or two nodes' messages
// of one job overtaking each other): it reads the job and its log and
// delivers what it missed, in seq order, as a resuming client gets it (the
// logged messages and the latest progress). Messages at or below the last
// seq delivered are dropped. Call it before the first Subscribe.
func (b *Broker) CatchUpFrom(store jobcast.JobStore) *Broker {
	b.store = store
	b.subs = map[*subscription]struct{}{}
	prev := b.nc.Opts.ReconnectedCB
	b.nc.SetReconnectHandler(func(nc *natsgo.Conn) {
		if prev != nil {
			prev(nc)
		}
		go b.catchUpAll()
	})
	return b
}

// catchUpAll catches every subscription up, after a reconnect.
func (b *Broker) catchUpAll() {
	b.mu.Lock()
	subs := make([]*subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		s.mu.Lock()
		b.catchUpLocked(s)
		s.mu.Unlock()
	}
}

// catchUpLocked delivers what the store has after s.last; s.mu is held.
func (b *Broker) catchUpLocked(s *subscription) {
	ctx, cancel := context.WithTimeout(context.Background(), catchUpTimeout)
	defer cancel()
	job, err := b.store.GetJob(ctx, s.jobID)
	if err != nil {
		if !errors.Is(err, jobcast.ErrJobNotFound) {
			b.log.Warn("catching up on missed messages failed; clients catch up when they resume", "job", s.jobID, "err", err)
		}
		return
	}
	if job.Seq <= s.last {
		return
	}
	logged, err := b.store.Messages(ctx, s.jobID, s.last)
	if err != nil {
		b.log.Warn("catching up on missed messages failed; clients catch up when they resume", "job", s.jobID, "err", err)
		return
	}
	for _, env := range jobcast.ReplayAfter(logged, job.LastProgress, s.last) {
		m, err := jobcast.NewMessage(env)
		if err != nil {
			b.log.Warn("dropping an unencodable logged message", "job", s.jobID, "seq", env.Seq, "err", err)
			continue
		}
		s.fn(m)
		s.last = env.Seq
	}
}

// deliver hands a live message to s, catching up first when its seq
// skips ahead of the last one delivered.
func (b *Broker) deliver(s *subscription, m *jobcast.Message) {
	if b.store == nil || m.Seq <= 0 { // no catch-up, or an internal message
		s.fn(m)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last > 0 && m.Seq > s.last+1 {
		b.catchUpLocked(s)
	}
	if m.Seq <= s.last {
		return // delivered already, by a catch-up
	}
	s.last = m.Seq
	s.fn(m)
}

func (b *Broker) subject(jobID string) string { return b.prefix + ".msg." + token(jobID) }

// Publish implements jobcast.Broker. Messages are handed to the connection's
// buffer in order; NATS preserves one publisher's order to each subscriber.
func (b *Broker) Publish(_ context.Context, jobID string, msgs []*jobcast.Message) error {
	subj := b.subject(jobID)
	for _, m := range msgs {
		// A progress message is encoded here, once, as the frame every
		// node's connections send.
		frame := m.EncodedFrame()
		nm := &natsgo.Msg{Subject: subj, Data: frame}
		if frame == nil {
			data, err := json.Marshal(&m.Envelope)
			if err != nil {
				return fmt.Errorf("encode %s message: %w", m.Type, err)
			}
			nm.Data = data
			nm.Header = natsgo.Header{noFrameHeader: []string{"1"}}
		}
		if err := b.nc.PublishMsg(nm); err != nil {
			return fmt.Errorf("publish to %s: %w", subj, err)
		}
	}
	return nil
}

// Subscribe implements jobcast.Broker. The subscription is registered with
// the server before Subscribe returns (a flush round trip), so a message
// published afterwards through any node reaches fn.
func (b *Broker) Subscribe(jobID string, fn func(*jobcast.Message)) (func(), error) {
	subj := b.subject(jobID)
	st := &subscription{jobID: jobID, fn: fn}
	sub, err := b.nc.Subscribe(subj, func(nm *natsgo.Msg) {
		m := &jobcast.Message{}
		if err := json.Unmarshal(nm.Data, &m.Envelope); err != nil {
			b.log.Warn("dropping an undecodable broker message", "subject", nm.Subject, "err", err)
			return
		}
		if nm.Header.Get(noFrameHeader) == "" {
			m.Frame = nm.Data
		}
		b.deliver(st, m)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", subj, err)
	}
	// While NATS is away the subscription waits, registered, for the
	// reconnect, which sends it again: there is no round trip to wait for
	// (Flush would hang up to 10 s), and nothing can be published to it
	// meanwhile. The caller's store reads fail fast then (JobStore).
	if b.nc.IsConnected() {
		if err := b.nc.Flush(); err != nil && b.nc.IsConnected() {
			_ = sub.Unsubscribe()
			return nil, fmt.Errorf("subscribe to %s: %w", subj, err)
		}
	}
	if b.store != nil {
		b.mu.Lock()
		b.subs[st] = struct{}{}
		b.mu.Unlock()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if b.store != nil {
				b.mu.Lock()
				delete(b.subs, st)
				b.mu.Unlock()
			}
			if err := sub.Unsubscribe(); err != nil && err != natsgo.ErrConnectionClosed {
				b.log.Warn("unsubscribe failed", "subject", subj, "err", err)
			}
		})
	}, nil
}
