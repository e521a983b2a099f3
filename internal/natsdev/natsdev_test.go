package natsdev

import (
	"context"
	"os"
	"regexp"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobcast/jobcast/internal/syncbuf"
)

// TestRun starts the server on a free port, uses JetStream through it, and
// stops it by cancelling the context; the temporary store goes with it.
func TestRun(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncbuf.Buffer
	done := make(chan error, 1)
	go func() { done <- Run(ctx, []string{"-addr", "127.0.0.1:0"}, &out, &errOut) }()
	re := regexp.MustCompile(`listening on (nats://127\.0\.0\.1:\d+) \(JetStream in (.+)\)`)
	var m []string
	for deadline := time.Now().Add(20 * time.Second); m == nil; m = re.FindStringSubmatch(out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no listening line; stdout %q stderr %q", out.String(), errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	nc, err := natsgo.Connect(m[1])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "natsdev_test"})
	if err != nil {
		t.Fatalf("JetStream: %v", err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := os.Stat(m[2]); !os.IsNotExist(err) {
		t.Fatalf("the temporary store %s is still there (%v)", m[2], err)
	}
}

// TestRunBadAddr refuses an address without a port.
func TestRunBadAddr(t *testing.T) {
	t.Parallel()
	var out, errOut syncbuf.Buffer
	if err := Run(context.Background(), []string{"-addr", "localhost"}, &out, &errOut); err == nil {
		t.Fatal("Run accepted -addr localhost")
	}
}
