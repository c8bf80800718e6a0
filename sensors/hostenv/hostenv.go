// Package hostenv is the sensors.Env of a real board: periph.io's host
// drivers (initialised once, here), I2C buses opened once and shared with
// their transactions serialized, GPIO lines by periph name or by
// gpiochip/line, and the real /sys and /proc.
//
//	env, closeEnv := hostenv.New(log)
//	defer closeEnv()
//	s, err := kinds.NewSensor(sensors.Spec{Name: "t1", Type: "bme280", Options: opts, Env: env})
package hostenv

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/host/v3"

	"github.com/edgeagent/agent/sensors"
)

// PinFunc resolves a GPIO line name; it is set by the gpio kinds' package
// (HostPin) when the daemon is built, to keep this package free of them.
type PinFunc func(name string) (gpio.PinIO, error)

var initOnce sync.Once

// New initialises periph.io's host drivers (once per process; what loaded,
// was skipped or failed is logged) and returns the board's Env and a func
// that closes the buses it opened.
func New(log *slog.Logger, pin PinFunc) (*sensors.Env, func()) {
	initOnce.Do(func() {
		st, err := host.Init()
		if err != nil {
			log.Warn("periph host drivers did not initialise; GPIO and I2C kinds will fail", "err", err)
			return
		}
		var loaded []string
		for _, d := range st.Loaded {
			loaded = append(loaded, d.String())
		}
		log.Debug("periph host drivers", "loaded", strings.Join(loaded, ","), "skipped", len(st.Skipped))
		for _, f := range st.Failed {
			log.Info("periph host driver failed to load", "driver", f.D.String(), "err", f.Err)
		}
	})
	if pin == nil {
		pin = byName
	}
	b := &buses{open: map[string]*lockedBus{}}
	env := &sensors.Env{
		I2C:      b.get,
		Pin:      pin,
		SysRoot:  "/sys",
		ProcRoot: "/proc",
		Clock:    sensors.RealClock{},
		Logger:   log,
	}
	return env, b.closeAll
}

type buses struct {
	mu   sync.Mutex
	open map[string]*lockedBus
}

// get opens bus ("/dev/i2c-1", "1" or "I2C1") once and shares it.
func (b *buses) get(name string) (i2c.Bus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	asked := name // errors use the config's spelling
	name = canonicalBus(name)
	if lb, ok := b.open[name]; ok {
		return lb, nil
	}
	if len(i2creg.All()) == 0 {
		return nil, fmt.Errorf("open I2C bus %q: this machine has no I2C bus (no /dev/i2c-*): enable it (on a Pi: dtparam=i2c_arm=on; on a ROCK: the i2c overlay in /boot) and load i2c-dev", asked)
	}
	bc, err := i2creg.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open I2C bus %q: %w (is the bus enabled and is this user in group i2c? ls /dev/i2c-*; on a Pi: dtparam=i2c_arm=on)", asked, err)
	}
	lb := &lockedBus{b: bc, slot: make(chan struct{}, 1)}
	b.open[name] = lb
	return lb, nil
}

func (b *buses) closeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for n, lb := range b.open {
		_ = lb.b.Close()
		delete(b.open, n)
	}
}

// lockedBus serializes transactions on one bus: sensors on their own
// schedules share it, and a transaction is never interleaved with another.
// Its reading slot serializes whole readings too (sensors.ReadingSlot).
type lockedBus struct {
	mu   sync.Mutex
	b    i2c.BusCloser
	slot chan struct{}
}

// ReadingSlot implements sensors.ReadingSlot.
func (l *lockedBus) ReadingSlot() chan struct{} { return l.slot }

func (l *lockedBus) String() string { return l.b.String() }

func (l *lockedBus) Tx(addr uint16, w, r []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Tx(addr, w, r)
}

func (l *lockedBus) SetSpeed(f physic.Frequency) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.SetSpeed(f)
}

// byName finds a line by periph name ("GPIO17").
func byName(name string) (gpio.PinIO, error) {
	if p := gpioreg.ByName(name); p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("no GPIO line %q (periph names like GPIO17; list lines with gpioinfo)", name)
}

// Scan lists the 7-bit addresses on bus that acknowledge a one-byte read,
// like i2cdetect -r.
func Scan(bus i2c.Bus) []uint16 {
	var found []uint16
	buf := make([]byte, 1)
	for a := uint16(0x03); a <= 0x77; a++ {
		if bus.Tx(a, nil, buf) == nil {
			found = append(found, a)
		}
	}
	return found
}

// canonicalBus spells "1", "I2C1" and "/dev/i2c-1" one way, so one bus gets
// one handle and one lock.
func canonicalBus(name string) string {
	n := strings.TrimPrefix(strings.TrimPrefix(name, "/dev/i2c-"), "I2C")
	if _, err := strconv.Atoi(n); err == nil {
		return "/dev/i2c-" + n
	}
	return name
}
