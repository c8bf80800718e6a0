package buffer

import (
	"fmt"
	"testing"
)

// TestInspect: a read-only look counts records and those still waiting,
// out-of-order acks included, and changes nothing.
func TestInspect(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(Options{Dir: dir, SegmentBytes: 4096, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 100; i++ {
		if _, err := l.Append(Record{Topic: "edge/dev1/telemetry/s", Payload: []byte(fmt.Sprintf(`{"seq":%d}`, i)), Sensor: "s", Seq: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for off := uint64(1); off <= 30; off++ {
		l.Ack(off)
	}
	l.Ack(50)
	l.Ack(51)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Waiting != 68 || s.Segments == 0 || s.Records < 68 {
		t.Errorf("Inspect = %+v, want 68 waiting", s)
	}
	again, _ := Inspect(dir)
	if again != s {
		t.Errorf("a second look differs: %+v vs %+v", again, s)
	}
}
