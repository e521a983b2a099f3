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
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/periodic"
)

var _ jobcast.Leader = (*Lease)(nil)

// LeaseConfig configures a Lease.
type LeaseConfig struct {
	KVConfig
	// Name is the lease's key in the LEASES bucket (default "alerting").
	Name string
	// Holder names this node in the lease (its node id); a random suffix
	// tells two processes with the same name apart.
	Holder string
	// TTL is how long a lease lasts without renewal (default 15s): after a
	// leader dies, another node takes over within TTL and a third of it.
	TTL   time.Duration
	Clock jobcast.Clock
	Log   *slog.Logger
}

// Lease elects one node of a cluster for a job only one may do (alert
// evaluation and notification). The lease is one KV key holding its holder
// and expiry, changed only by revision-checked writes: a node takes it when
// it is absent or expired, and its holder renews it every third of the TTL.
//
// A holder believes it leads until a fifth of the TTL before the expiry it
// wrote, measured from before its write, so it stops before any other
// node can take the lease over even if its renewals stall; it steps down
// at once when a renewal fails. Expiry is compared on each node's clock,
// so node clocks must agree within that fifth of the TTL (3 s by default);
// NTP does far better.
type Lease struct {
	kv     jetstream.KeyValue
	cfg    LeaseConfig
	holder string
	runner *periodic.Runner

	mu      sync.Mutex
	until   time.Time // leads while the clock is before it
	rev     uint64    // revision of the lease as last written by this node
	stopped bool
}

// leaseRecord is the value of the lease key.
type leaseRecord struct {
	Holder    string `json:"holder"`
	ExpiresAt int64  `json:"expiresAt"` // Unix milliseconds
}

// NewLease creates or updates the LEASES bucket and returns a lease on nc,
// not yet held: Start campaigns. The caller owns nc.
func NewLease(ctx context.Context, nc *natsgo.Conn, cfg LeaseConfig) (*Lease, error) {
	if cfg.Name == "" {
		cfg.Name = "alerting"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 15 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = jobcast.SystemClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	kv, err := openBucket(ctx, js, cfg.name("LEASES"), "jobcast leases: which node does what only one node may", cfg.KVConfig)
	if err != nil {
		return nil, err
	}
	l := &Lease{kv: kv, cfg: cfg, holder: cfg.Holder + "-" + nuid.Next()}
	l.runner = periodic.New(cfg.Clock, cfg.TTL/3, l.renew)
	return l, nil
}

// IsLeader implements jobcast.Leader.
func (l *Lease) IsLeader() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cfg.Clock.Now().Before(l.until)
}

// Start campaigns now and then every third of the TTL.
func (l *Lease) Start() { l.runner.Start() }

// Stop ends the campaign and, if this node leads, gives the lease up so
// that another node takes over at its next attempt instead of after the
// TTL. Idempotent; waits for a running attempt.
func (l *Lease) Stop() {
	l.runner.Stop()
	l.mu.Lock()
	held, rev := l.cfg.Clock.Now().Before(l.until), l.rev
	l.until, l.stopped = time.Time{}, true
	l.mu.Unlock()
	if !held {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(l.cfg.TTL/3, requestTimeout))
	defer cancel()
	// At the revision this node wrote: never deletes a successor's lease.
	if err := l.kv.Delete(ctx, l.cfg.Name, jetstream.LastRevision(rev)); err != nil {
		l.cfg.Log.Warn("lease not released; another node takes over when it expires", "lease", l.cfg.Name, "err", err)
		return
	}
	l.cfg.Log.Info("lease released", "lease", l.cfg.Name)
}

// renew takes or renews the lease if it is free, expired or this node's.
func (l *Lease) renew(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, min(l.cfg.TTL/3, requestTimeout))
	defer cancel()
	now := l.cfg.Clock.Now()
	rev, rec, err := l.read(ctx)
	if err != nil {
		l.stepDown("cannot read the lease", err)
		return
	}
	if rev != 0 && rec.Holder != l.holder && now.UnixMilli() < rec.ExpiresAt {
		l.stepDown("", nil) // another node leads
		return
	}
	data, _ := json.Marshal(leaseRecord{Holder: l.holder, ExpiresAt: now.Add(l.cfg.TTL).UnixMilli()})
	var newRev uint64
	if rev == 0 {
		newRev, err = l.kv.Create(ctx, l.cfg.Name, data)
	} else {
		newRev, err = l.kv.Update(ctx, l.cfg.Name, data, rev)
	}
	if err != nil {
		l.stepDown("lease not renewed", err)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	if !now.Before(l.until) {
		l.cfg.Log.Info("lease acquired: this node leads", "lease", l.cfg.Name, "holder", l.holder, "ttl", l.cfg.TTL)
	}
	l.until, l.rev = now.Add(l.cfg.TTL-l.cfg.TTL/5), newRev
}

func (l *Lease) read(ctx context.Context) (uint64, leaseRecord, error) {
	var rec leaseRecord
	e, err := l.kv.Get(ctx, l.cfg.Name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, rec, nil
	}
	if err != nil {
		return 0, rec, err
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return 0, rec, fmt.Errorf("decode lease: %w", err)
	}
	return e.Revision(), rec, nil
}

// stepDown stops leading now; why is logged when this node was leading.
func (l *Lease) stepDown(why string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.Clock.Now().Before(l.until) {
		if why == "" {
			why = "another node holds the lease"
		}
		l.cfg.Log.Warn("lease lost: this node stops leading", "lease", l.cfg.Name, "reason", why, "err", err)
	}
	l.until = time.Time{}
}
