package i2cdev

import (
	"context"
	"errors"
	"maps"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgeagent/agent/sensors"
	"github.com/edgeagent/agent/sensors/clocktest"
	"periph.io/x/conn/v3/i2c/i2ctest"
)

// waitTimers yields until code under test has armed n timers on c; the
// deadline only bounds a broken test.
func waitTimers(t *testing.T, c *clocktest.Clock, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.Timers() < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d armed timer(s)", n)
		}
		runtime.Gosched()
	}
}

// TestSCD4xWaitsOnClock proves a read waits for data-ready on the injected
// clock, polling once per second, and then decodes the sample.
func TestSCD4xWaitsOnClock(t *testing.T) {
	bus := playback(scdInit, []i2ctest.IO{scdNotReady, scdNotReady}, scdRead, scdStop)
	clock := clocktest.New(time.Unix(1000, 0))
	s, err := NewSCD4x(spec("scd4x", nil, envFor(bus, clock)))
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		v   sensors.Values
		err error
	}
	done := make(chan res, 1)
	go func() {
		v, err := s.Read(context.Background())
		done <- res{v, err}
	}()
	for range 2 {
		waitTimers(t, clock, 1)
		clock.Advance(time.Second)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if want := (sensors.Values{"co2_ppm": 556.0, "temperature_c": 25.45, "humidity_pct": 30.09}); !maps.Equal(r.v, want) {
		t.Errorf("Read() = %v, want %v", r.v, want)
	}
	if err := s.(sensors.Closer).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close: %v, want ErrClosed", err)
	}
	mustClose(t, bus)
}

// TestReadHonoursContext proves a read waiting on a slow chip returns when
// ctx is cancelled, that the next read waits for the abandoned one to free
// the bus (or for its own ctx), and that a dead ctx does no I/O at all.
func TestReadHonoursContext(t *testing.T) {
	bus := playback(scdInit, []i2ctest.IO{scdNotReady}, scdStop)
	clock := clocktest.New(time.Unix(1000, 0))
	s, err := NewSCD4x(spec("scd4x", nil, envFor(bus, clock)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(ctx)
		done <- err
	}()
	waitTimers(t, clock, 1) // Read is now waiting for the next poll.
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel: %v, want context.Canceled", err)
	}
	// Already-dead ctx: refused before touching the bus.
	if _, err := s.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read with dead ctx: %v", err)
	}
	if err := s.(sensors.Closer).Close(); err != nil {
		t.Fatal(err)
	}
	mustClose(t, bus)
}

// TestSHT3xHonoursContext proves the conversion wait is on the injected
// clock and a deadline ends it.
func TestSHT3xHonoursContext(t *testing.T) {
	bus := playback(sht3xRead()[:1])
	clock := clocktest.New(time.Unix(1000, 0)) // never advanced
	s, err := NewSHT3x(spec("sht3x", nil, envFor(bus, clock)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(ctx)
		done <- err
	}()
	waitTimers(t, clock, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Read: %v, want context.Canceled", err)
	}
	mustClose(t, bus)
}

// TestConcurrentReads proves reads from the scheduler and a command at
// once are serialized: each gets a whole transaction pair (run with -race).
func TestConcurrentReads(t *testing.T) {
	const n = 8
	var ops [][]i2ctest.IO
	for range n {
		ops = append(ops, sht3xRead(0x66, 0x66, 0x93, 0x66, 0x66, 0x93))
	}
	bus := playback(ops...)
	s, err := NewSHT3x(spec("sht3x", nil, envFor(bus, instantClock{})))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if _, err := s.Read(context.Background()); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mustClose(t, bus)
}

func TestKinds(t *testing.T) {
	want := []string{"aht20", "bh1750", "bme280", "bmp280", "ina219", "mcp9808", "scd4x", "sht3x"}
	if got := slices.Sorted(maps.Keys(Kinds)); !slices.Equal(got, want) {
		t.Errorf("Kinds = %v, want %v", got, want)
	}
}

// FuzzDecodeSHT3x: any six bytes either fail the CRC or decode inside the
// formula's bounds; nothing panics.
func FuzzDecodeSHT3x(f *testing.F) {
	f.Add([]byte{0x66, 0x66, 0x93, 0x66, 0x66, 0x93})
	f.Add([]byte{0xbe, 0xef, 0x92, 0xbe, 0xef, 0x92})
	f.Add([]byte{0x00, 0x00, 0x81, 0xff, 0xff, 0xac})
	f.Add([]byte{0x66, 0x66, 0x94, 0x66, 0x66, 0x93})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != 6 {
			return
		}
		tc, rh, err := decodeSHT3x([6]byte(b))
		if err != nil {
			if !errors.Is(err, ErrCRC) {
				t.Fatalf("error %v is not ErrCRC", err)
			}
			return
		}
		if tc < -45 || tc > 130 || rh < 0 || rh > 100 {
			t.Fatalf("decoded %v °C %v %%RH outside the formula's bounds", tc, rh)
		}
	})
}
