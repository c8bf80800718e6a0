package brokertest

import (
	"context"
	"testing"
	"time"
)

// TestBrokerRoundTrip proves the harness itself: the real broker with mutual
// TLS and the fleet ACL, an ops publish seen by the monitor.
func TestBrokerRoundTrip(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := NewFleet(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	sub, err := f.Client(b, f.Monitor).Subscribe(ctx, "edge/#")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	if err := f.Client(b, f.Ops).Pub(ctx, "edge/dev1/cmd", []byte(`{"id":"x"}`), 1, false); err != nil {
		t.Fatal(err)
	}
	got, err := sub.Next("edge/dev1/cmd", 5*time.Second)
	if err != nil {
		t.Fatalf("%v\nbroker log:\n%s", err, b.Log())
	}
	if got != `{"id":"x"}` {
		t.Errorf("payload = %q", got)
	}
}
