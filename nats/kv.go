package nats

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// KVConfig is what the KV-backed stores (experiments, alerts, the lease)
// share. The zero value is usable.
type KVConfig struct {
	// BucketPrefix starts every bucket's and stream's name (default
	// "JOBCAST_"): two clusters, or two tests, may share a NATS server
	// under different prefixes.
	BucketPrefix string
	// Replicas is each bucket's replication factor (default 1; use 3 on a
	// 3-server NATS cluster).
	Replicas int
	// Memory keeps the buckets in memory: for tests and demos.
	Memory bool
}

func (c KVConfig) name(suffix string) string {
	if c.BucketPrefix == "" {
		return "JOBCAST_" + suffix
	}
	return c.BucketPrefix + suffix
}

// openBucket creates or updates a KV bucket keeping one value per key.
func openBucket(ctx context.Context, js jetstream.JetStream, name, description string, cfg KVConfig) (jetstream.KeyValue, error) {
	storage := jetstream.FileStorage
	if cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: description,
		History:     1,
		Storage:     storage,
		Replicas:    max(cfg.Replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("create KV bucket %s: %w", name, err)
	}
	return kv, nil
}

// keyPart encodes an id as one KV key token. KV keys allow only
// [-/_=.a-zA-Z0-9] and '.' separates tokens, while job and experiment ids
// may hold any text: unpadded base64url fits, and is reversible.
func keyPart(id string) string {
	if id == "" {
		return "="
	}
	return base64.RawURLEncoding.EncodeToString([]byte(id))
}

// withTimeout bounds a call whose context has no deadline, so that a
// store call never hangs while NATS is unreachable.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, requestTimeout)
}

// loadAll returns the current entries of the keys matching pattern (a
// subject wildcard such as "alert.*"), read through a watcher that stops
// at the end of the initial values.
func loadAll(ctx context.Context, kv jetstream.KeyValue, pattern string) ([]jetstream.KeyValueEntry, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	w, err := kv.Watch(ctx, pattern, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", kv.Bucket(), pattern, err)
	}
	defer w.Stop()
	var out []jetstream.KeyValueEntry
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("read %s %s: watcher closed", kv.Bucket(), pattern)
			}
			if e == nil {
				return out, nil
			}
			out = append(out, e)
		case <-ctx.Done():
			return nil, fmt.Errorf("read %s %s: %w", kv.Bucket(), pattern, ctx.Err())
		}
	}
}

// isConflict reports a failed revision check of Create, Update or a
// revision-checked Purge: another writer got there first.
func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists)
}
