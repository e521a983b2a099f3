package nats

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

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

func (b *Broker) subject(jobID string) string { return b.prefix + ".msg." + token(jobID) }

// Publish implements jobcast.Broker. Messages are handed to the connection's
// buffer in order; NATS preserves one publisher's order to each subscriber.
func (b *Broker) Publish(_ context.Context, jobID string, msgs []*jobcast.Message) error {
	subj := b.subject(jobID)
	for _, m := range msgs {
		nm := &natsgo.Msg{Subject: subj, Data: m.Frame}
		if m.Frame == nil {
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
	sub, err := b.nc.Subscribe(subj, func(nm *natsgo.Msg) {
		m := &jobcast.Message{}
		if err := json.Unmarshal(nm.Data, &m.Envelope); err != nil {
			b.log.Warn("dropping an undecodable broker message", "subject", nm.Subject, "err", err)
			return
		}
		if nm.Header.Get(noFrameHeader) == "" {
			m.Frame = nm.Data
		}
		fn(m)
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
	var once sync.Once
	return func() {
		once.Do(func() {
			if err := sub.Unsubscribe(); err != nil && err != natsgo.ErrConnectionClosed {
				b.log.Warn("unsubscribe failed", "subject", subj, "err", err)
			}
		})
	}, nil
}
