package i2cdev

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/edgeagent/agent/sensors"
	"periph.io/x/conn/v3/i2c"
)

// Kinds maps config type names to constructors.
var Kinds = map[string]func(sensors.Spec) (sensors.Sensor, error){
	"bme280":  NewBME280,
	"bmp280":  NewBMP280,
	"aht20":   NewAHT20,
	"mcp9808": NewMCP9808,
	"ina219":  NewINA219,
	"scd4x":   NewSCD4x,
	"bh1750":  NewBH1750,
	"sht3x":   NewSHT3x,
}

var (
	// ErrNoBus is wrapped when the Spec carries no way to open an I²C bus.
	ErrNoBus = errors.New("no I2C bus provider (Spec.Env.I2C is nil)")
	// ErrCRC is wrapped when a chip's checksum does not match its data.
	ErrCRC = errors.New("CRC mismatch")
	// ErrClosed is wrapped by Read after Close.
	ErrClosed = errors.New("sensor closed")
)

// busOptions are the options every kind takes.
type busOptions struct {
	Bus string `toml:"bus"`
	// Address is a pointer so an explicit 0 is refused, not defaulted.
	Address *int `toml:"address"`
}

// chip describes one kind's fixed facts.
type chip struct {
	kind string
	// addrs are the addresses the chip can be strapped to; the first is
	// the default.
	addrs  []uint16
	keys   []string
	ranges map[string]sensors.Range
}

// device is what every kind shares: where the chip is, what it reports,
// and the one-at-a-time guard for its transactions.
type device struct {
	chip
	name  string
	bus   string
	addr  uint16
	clock sensors.Clock
	// sem is a one-slot semaphore rather than a mutex so that waiting for
	// an earlier, abandoned read can itself be abandoned with ctx.
	sem chan struct{}

	closeOnce sync.Once
	closed    chan struct{}
}

// open validates the bus options and opens the bus.
func open(s sensors.Spec, c chip, o busOptions) (*device, i2c.Bus, error) {
	if o.Bus == "" {
		return nil, nil, fmt.Errorf("%s: %w: bus is required (e.g. \"/dev/i2c-1\" or \"1\")", c.kind, sensors.ErrOption)
	}
	addr := c.addrs[0]
	if o.Address != nil {
		a := *o.Address
		if a < 0x03 || a > 0x77 {
			return nil, nil, fmt.Errorf("%s on %s: %w: address %#x is outside the 7-bit range 0x03..0x77 (allowed for %s: %s)", c.kind, o.Bus, sensors.ErrOption, a, c.kind, hexList(c.addrs))
		}
		if !containsAddr(c.addrs, uint16(a)) {
			return nil, nil, fmt.Errorf("%s on %s: %w: address %#x is not one a %s can use (allowed: %s)", c.kind, o.Bus, sensors.ErrOption, a, c.kind, hexList(c.addrs))
		}
		addr = uint16(a)
	}
	d := &device{chip: c, name: s.Name, bus: o.Bus, addr: addr, sem: make(chan struct{}, 1), closed: make(chan struct{})}
	if s.Env == nil || s.Env.I2C == nil {
		return nil, nil, d.errorf("open bus: %w", ErrNoBus)
	}
	d.clock = s.Env.Clock
	if d.clock == nil {
		d.clock = sensors.RealClock{}
	}
	b, err := s.Env.I2C(o.Bus)
	if err != nil {
		return nil, nil, d.errorf("open bus: %w", err)
	}
	if b == nil {
		return nil, nil, d.errorf("open bus: %w", ErrNoBus)
	}
	if rs, ok := b.(sensors.ReadingSlot); ok {
		// The bus serializes whole readings (a command, the conversion
		// wait, the result) across every sensor on it, not only single
		// transactions.
		d.sem = rs.ReadingSlot()
	}
	return d, b, nil
}

// errorf prefixes what failed with the chip, bus and address.
func (d *device) errorf(format string, a ...any) error {
	return fmt.Errorf("%s on %s at 0x%02x: "+format, append([]any{d.kind, d.bus, d.addr}, a...)...)
}

func (d *device) Name() string   { return d.name }
func (d *device) Type() string   { return d.kind }
func (d *device) Keys() []string { return append([]string(nil), d.keys...) }

type result struct {
	v   sensors.Values
	err error
}

// read runs sense with the device to itself and checks the values against
// the datasheet ranges. sense runs on its own goroutine because periph's
// drivers sleep (up to 140 ms) and a bus can hang; a cancelled ctx returns
// at once, and the next read waits for the abandoned one to let go of the
// bus, or for its own ctx.
func (d *device) read(ctx context.Context, sense func(context.Context) (sensors.Values, error)) (sensors.Values, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-d.closed:
		<-d.sem
		return nil, d.errorf("read: %w", ErrClosed)
	default:
	}
	ch := make(chan result, 1)
	go func() {
		defer func() { <-d.sem }()
		v, err := sense(ctx)
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(r.err, ctxErr) {
				return nil, ctxErr
			}
			return nil, d.errorf("%w", r.err)
		}
		if err := sensors.CheckRanges(r.v, d.ranges); err != nil {
			return nil, d.errorf("%w", err)
		}
		return r.v, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// close runs stop once, after any read in flight has finished, and makes
// later reads fail with ErrClosed.
func (d *device) close(stop func() error) error {
	var err error
	d.closeOnce.Do(func() {
		d.sem <- struct{}{}
		defer func() { <-d.sem }()
		close(d.closed)
		if stop != nil {
			if e := stop(); e != nil {
				err = d.errorf("close: %w", e)
			}
		}
	})
	return err
}

// wait blocks for d on the injected clock, or until ctx ends.
func wait(ctx context.Context, c sensors.Clock, d time.Duration) error {
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func containsAddr(as []uint16, a uint16) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

func hexList(as []uint16) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = fmt.Sprintf("0x%02x", a)
	}
	return strings.Join(s, ", ")
}

// optionErr reports a bad value for one option with the values allowed.
func optionErr(kind, name string, got any, allowed string) error {
	return fmt.Errorf("%s: %w: %s = %v is not allowed (allowed: %s)", kind, sensors.ErrOption, name, got, allowed)
}

func round(v float64, places int) float64 {
	p := math.Pow10(places)
	return math.Round(v*p) / p
}

// KeysOf returns the value keys a kind reports, known without its hardware
// (for Home Assistant entities of a sensor whose bus is not there yet).
func KeysOf(kind string) []string {
	for _, c := range []chip{aht20Chip, bh1750Chip, bme280Chip, bmp280Chip, ina219Chip, mcp9808Chip, scd4xChip, sht3xChip} {
		if c.kind == kind {
			return append([]string(nil), c.keys...)
		}
	}
	return nil
}
