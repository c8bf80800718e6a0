package i2cdev

import (
	"context"
	"errors"
	"sync"
	"testing"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"

	"github.com/edgeagent/agent/sensors"
)

// slotBus is a bus with two SHT3x (0x44, 0x45) that offers a reading slot
// and fails if a measurement's command and its read are split by another
// device's traffic.
type slotBus struct {
	slot    chan struct{}
	mu      sync.Mutex
	pending uint16 // address with a measurement started and not yet read
	split   bool
}

func (b *slotBus) ReadingSlot() chan struct{}      { return b.slot }
func (b *slotBus) String() string                  { return "slot-bus" }
func (b *slotBus) SetSpeed(physic.Frequency) error { return nil }
func (b *slotBus) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if addr != 0x44 && addr != 0x45 {
		return errors.New("NACK")
	}
	if b.pending != 0 && b.pending != addr {
		b.split = true
	}
	if len(w) > 0 {
		b.pending = addr
		return nil
	}
	b.pending = 0
	if len(r) == 6 {
		c := crc8([]byte{0x66, 0x66})
		copy(r, []byte{0x66, 0x66, c, 0x66, 0x66, c})
	}
	return nil
}

// TestReadingsSerializedOnOneBus: with the bus's reading slot, two sensors
// on one bus never interleave a measurement (command, wait, read).
func TestReadingsSerializedOnOneBus(t *testing.T) {
	bus := &slotBus{slot: make(chan struct{}, 1)}
	env := &sensors.Env{I2C: func(string) (i2c.Bus, error) { return bus, nil }, Clock: sensors.RealClock{}}
	var ss []sensors.Sensor
	for _, a := range []int{0x44, 0x45} {
		s, err := NewSHT3x(sensors.Spec{Name: "s", Type: "sht3x", Options: map[string]any{"bus": "1", "address": a}, Env: env})
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if _, err := s.Read(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if bus.split {
		t.Error("a measurement was split by the other sensor's traffic")
	}
}
