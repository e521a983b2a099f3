package inmem

import (
	"context"
	"sync"

	"github.com/jobcast/jobcast"
)

var _ jobcast.Broker = (*Broker)(nil)

// Broker is an in-process jobcast.Broker: Publish calls every subscriber of
// the job synchronously, in the publisher's goroutine.
type Broker struct {
	mu   sync.RWMutex
	subs map[string]map[*subscription]struct{}
}

type subscription struct {
	fn func(*jobcast.Message)
}

// NewBroker returns an empty Broker.
func NewBroker() *Broker {
	return &Broker{subs: make(map[string]map[*subscription]struct{})}
}

// Publish implements jobcast.Broker.
func (b *Broker) Publish(_ context.Context, jobID string, msgs []*jobcast.Message) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for s := range b.subs[jobID] {
		for _, m := range msgs {
			s.fn(m)
		}
	}
	return nil
}

// Subscribe implements jobcast.Broker.
func (b *Broker) Subscribe(jobID string, fn func(*jobcast.Message)) (func(), error) {
	s := &subscription{fn: fn}
	b.mu.Lock()
	set := b.subs[jobID]
	if set == nil {
		set = make(map[*subscription]struct{})
		b.subs[jobID] = set
	}
	set[s] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs[jobID], s)
			if len(b.subs[jobID]) == 0 {
				delete(b.subs, jobID)
			}
			b.mu.Unlock()
		})
	}, nil
}
