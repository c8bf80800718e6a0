package hostenv

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"periph.io/x/conn/v3/physic"
)

// overlapBus records whether two transactions ever ran at once.
type overlapBus struct {
	in      atomic.Int32
	overlap atomic.Bool
	n       atomic.Int32
}

func (b *overlapBus) String() string                  { return "fake" }
func (b *overlapBus) Close() error                    { return nil }
func (b *overlapBus) SetSpeed(physic.Frequency) error { return nil }
func (b *overlapBus) Tx(addr uint16, w, r []byte) error {
	if b.in.Add(1) > 1 {
		b.overlap.Store(true)
	}
	for i := 0; i < 1000; i++ { // a transaction takes a while
		b.n.Add(1)
	}
	b.in.Add(-1)
	return nil
}

// TestLockedBusSerializes: sensors sharing a bus never interleave their
// transactions.
func TestLockedBusSerializes(t *testing.T) {
	fake := &overlapBus{}
	lb := &lockedBus{b: fake}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				_ = lb.Tx(uint16(0x40+g), []byte{0}, make([]byte, 2))
			}
		}()
	}
	wg.Wait()
	if fake.overlap.Load() {
		t.Error("two transactions overlapped on one bus")
	}
}

// twoDevices acknowledges reads at 0x44 and 0x76 only.
type twoDevices struct{ overlapBus }

func (b *twoDevices) Tx(addr uint16, w, r []byte) error {
	if addr == 0x44 || addr == 0x76 {
		return nil
	}
	return errNACK
}

var errNACK = errors.New("NACK")

func TestScan(t *testing.T) {
	got := Scan(&twoDevices{})
	if len(got) != 2 || got[0] != 0x44 || got[1] != 0x76 {
		t.Errorf("Scan = %#x, want [0x44 0x76]", got)
	}
}
