package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobcast/jobcast"
)

var _ jobcast.AlertStore = (*AlertStore)(nil)

// Keys of the alert bucket.
const (
	alertKeyPrefix   = "alert."
	silenceKeyPrefix = "silence."
	rulesKey         = "rules"
)

// AlertStore is the cluster jobcast.AlertStore. Alert instances, silences
// and the API rules are KV entries in one bucket (alert.<fingerprint>,
// silence.<id>, rules); the notification history is a stream, whose
// sequence is the record's ID, so IDs grow in append order across nodes as
// SQLite's AUTOINCREMENT does on one.
//
// SaveAlerts is not one transaction, as it is in SQLite: KV writes are per
// key. That is safe for the alerting service, which puts every alert it
// holds at each evaluation (a half-done save is completed by the next)
// and deletes only pending alerts that stopped holding and resolved alerts
// past their retention (one left behind is deleted again after the next
// load).
type AlertStore struct {
	kv      jetstream.KeyValue
	js      jetstream.JetStream
	history jetstream.Stream
	subject string
}

// NewAlertStore creates or updates the bucket and the history stream and
// returns a store on nc. The caller owns nc: Close leaves it open.
func NewAlertStore(ctx context.Context, nc *natsgo.Conn, cfg KVConfig) (*AlertStore, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	kv, err := openBucket(ctx, js, cfg.name("ALERTS"), "jobcast alert instances, silences and the rules set through the API", cfg)
	if err != nil {
		return nil, err
	}
	storage := jetstream.FileStorage
	if cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	name := cfg.name("ALERT_HISTORY")
	subject := name + ".notifications"
	history, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        name,
		Description: "jobcast notification history; retention is the alerting config's historyRetention",
		Subjects:    []string{subject},
		Storage:     storage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    max(cfg.Replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", name, err)
	}
	return &AlertStore{kv: kv, js: js, history: history, subject: subject}, nil
}

// LoadAlerts implements jobcast.AlertStore, ordered by fingerprint.
func (s *AlertStore) LoadAlerts(ctx context.Context) ([]jobcast.AlertInstance, error) {
	entries, err := loadAll(ctx, s.kv, alertKeyPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("load alerts: %w", err)
	}
	var out []jobcast.AlertInstance
	for _, e := range entries {
		var a jobcast.AlertInstance
		if err := json.Unmarshal(e.Value(), &a); err != nil {
			return nil, fmt.Errorf("load alerts: decode: %w", err)
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Fingerprint < out[j].Fingerprint })
	return out, nil
}

// saveParallelism bounds the puts of one SaveAlerts in flight: each is a
// round trip, and an evaluation puts every alert.
const saveParallelism = 16

// SaveAlerts implements jobcast.AlertStore; see AlertStore for why it is
// not one transaction.
func (s *AlertStore) SaveAlerts(ctx context.Context, put []jobcast.AlertInstance, del []string) error {
	if len(put) == 0 && len(del) == 0 {
		return nil
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, saveParallelism)
	)
	do := func(f func() error) {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	for i := range put {
		data, err := json.Marshal(&put[i])
		if err != nil {
			wg.Wait()
			return fmt.Errorf("save alerts: %w", err)
		}
		key := alertKeyPrefix + keyPart(put[i].Fingerprint)
		do(func() error {
			_, err := s.kv.Put(ctx, key, data)
			return err
		})
	}
	for _, fp := range del {
		key := alertKeyPrefix + keyPart(fp)
		do(func() error { return s.kv.Purge(ctx, key) })
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("save alerts: %w", errors.Join(errs...))
	}
	return nil
}

// ListSilences implements jobcast.AlertStore: latest end first, then by id.
func (s *AlertStore) ListSilences(ctx context.Context) ([]jobcast.Silence, error) {
	entries, err := loadAll(ctx, s.kv, silenceKeyPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("list silences: %w", err)
	}
	var out []jobcast.Silence
	for _, e := range entries {
		var sil jobcast.Silence
		if err := json.Unmarshal(e.Value(), &sil); err != nil {
			return nil, fmt.Errorf("list silences: decode: %w", err)
		}
		out = append(out, sil)
	}
	// SQLite orders by ends_at in milliseconds; so does this.
	sort.Slice(out, func(i, j int) bool {
		ei, ej := out[i].EndsAt.UnixMilli(), out[j].EndsAt.UnixMilli()
		if ei != ej {
			return ei > ej
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// PutSilence implements jobcast.AlertStore.
func (s *AlertStore) PutSilence(ctx context.Context, sil jobcast.Silence) error {
	data, err := json.Marshal(&sil)
	if err != nil {
		return fmt.Errorf("put silence: %w", err)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if _, err := s.kv.Put(ctx, silenceKeyPrefix+keyPart(sil.ID), data); err != nil {
		return fmt.Errorf("put silence: %w", err)
	}
	return nil
}

// DeleteSilencesEndedBefore implements jobcast.AlertStore. A silence
// replaced meanwhile (its end moved) is kept: the purge checks the
// revision it read.
func (s *AlertStore) DeleteSilencesEndedBefore(ctx context.Context, t time.Time) (int64, error) {
	sils, err := loadAll(ctx, s.kv, silenceKeyPrefix+"*")
	if err != nil {
		return 0, fmt.Errorf("delete silences: %w", err)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	var n int64
	for _, e := range sils {
		var sil jobcast.Silence
		if err := json.Unmarshal(e.Value(), &sil); err != nil {
			return n, fmt.Errorf("delete silences: decode: %w", err)
		}
		if sil.EndsAt.UnixMilli() >= t.UnixMilli() {
			continue
		}
		err := s.kv.Purge(ctx, e.Key(), jetstream.LastRevision(e.Revision()))
		if isConflict(err) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("delete silences: %w", err)
		}
		n++
	}
	return n, nil
}

// AppendNotification implements jobcast.AlertStore: the record's ID is
// its stream sequence.
func (s *AlertStore) AppendNotification(ctx context.Context, r jobcast.NotificationRecord) (int64, error) {
	r.ID = 0
	data, err := json.Marshal(&r)
	if err != nil {
		return 0, fmt.Errorf("append notification: %w", err)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	ack, err := s.js.Publish(ctx, s.subject, data)
	if err != nil {
		return 0, fmt.Errorf("append notification: %w", err)
	}
	return int64(ack.Sequence), nil
}

// ListNotifications implements jobcast.AlertStore, newest first. It reads
// the last limit sequences, and further back only where retention left
// gaps.
func (s *AlertStore) ListNotifications(ctx context.Context, limit int) ([]jobcast.NotificationRecord, error) {
	out := []jobcast.NotificationRecord{}
	if limit <= 0 {
		return out, nil
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	info, err := s.history.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	first, end := info.State.FirstSeq, info.State.LastSeq
	if info.State.Msgs == 0 {
		return out, nil
	}
	for len(out) < limit && end >= first {
		start := first
		if need := uint64(limit - len(out)); end-first+1 > need {
			start = end - need + 1
		}
		recs, err := s.readHistory(ctx, start, end)
		if err != nil {
			return nil, fmt.Errorf("list notifications: %w", err)
		}
		for i := len(recs) - 1; i >= 0 && len(out) < limit; i-- {
			out = append(out, recs[i])
		}
		if start == first {
			break
		}
		end = start - 1
	}
	return out, nil
}

// readHistory returns the records with sequences in [from, to], oldest
// first, through a short-lived ordered consumer.
func (s *AlertStore) readHistory(ctx context.Context, from, to uint64) ([]jobcast.NotificationRecord, error) {
	cons, err := s.history.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
	})
	if err != nil {
		return nil, err
	}
	var out []jobcast.NotificationRecord
	for {
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			return nil, err
		}
		n, done := 0, false
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			seq := md.Sequence.Stream
			if seq > to {
				done = true
				continue
			}
			var r jobcast.NotificationRecord
			if err := json.Unmarshal(m.Data(), &r); err != nil {
				return nil, fmt.Errorf("decode record %d: %w", seq, err)
			}
			r.ID = int64(seq)
			out = append(out, r)
			if seq == to || md.NumPending == 0 {
				done = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, err
		}
		if done || n == 0 {
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// DeleteNotificationsBefore implements jobcast.AlertStore. It reads the
// whole history (notifications, not events: small) and deletes each old
// record by sequence; it does not assume time order, since two leaders'
// clocks may differ.
func (s *AlertStore) DeleteNotificationsBefore(ctx context.Context, t time.Time) (int64, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	info, err := s.history.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("delete notifications: %w", err)
	}
	if info.State.Msgs == 0 {
		return 0, nil
	}
	recs, err := s.readHistory(ctx, info.State.FirstSeq, info.State.LastSeq)
	if err != nil {
		return 0, fmt.Errorf("delete notifications: %w", err)
	}
	var n int64
	for _, r := range recs {
		if !r.At.Before(t) {
			continue
		}
		if err := s.history.DeleteMsg(ctx, uint64(r.ID)); err != nil {
			return n, fmt.Errorf("delete notifications: %w", err)
		}
		n++
	}
	return n, nil
}

// APIRules implements jobcast.AlertStore.
func (s *AlertStore) APIRules(ctx context.Context) (string, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	e, err := s.kv.Get(ctx, rulesKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read API rules: %w", err)
	}
	return string(e.Value()), nil
}

// SetAPIRules implements jobcast.AlertStore.
func (s *AlertStore) SetAPIRules(ctx context.Context, doc string) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if _, err := s.kv.Put(ctx, rulesKey, []byte(doc)); err != nil {
		return fmt.Errorf("write API rules: %w", err)
	}
	return nil
}

// Close implements jobcast.AlertStore; the connection is the caller's.
func (s *AlertStore) Close() error { return nil }
