// Package sysfs holds the kinds that read and write the kernel's own files
// rather than a bus: "system", a sensor of the board's health (CPU
// temperature, load, memory, uptime) from /sys and /proc, and "led", an
// actuator for an LED the kernel exposes under /sys/class/leds (the Pi's ACT
// LED, a ROCK's user LEDs).
//
// Every path is under sensors.Env.SysRoot and ProcRoot ("/sys" and "/proc"
// when empty), so tests point them at fixture trees in testdata/. The file
// formats are parsed by pure functions that name the file and line of
// anything they cannot read.
//
//	[[sensor]]
//	name = "board"
//	type = "system"
//
//	[[actuator]]
//	name = "status-led"
//	type = "led"
//	led = "led0"     # a directory name in /sys/class/leds
package sysfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/edgeagent/agent/sensors"
)

// Sensors are this package's sensor kinds by config type name.
var Sensors = map[string]func(sensors.Spec) (sensors.Sensor, error){
	"system": NewSystem,
}

// Actuators are this package's actuator kinds by config type name.
var Actuators = map[string]func(sensors.Spec) (sensors.Actuator, error){
	"led": NewLED,
}

func roots(env *sensors.Env) (sys, proc string) {
	sys, proc = "/sys", "/proc"
	if env != nil && env.SysRoot != "" {
		sys = env.SysRoot
	}
	if env != nil && env.ProcRoot != "" {
		proc = env.ProcRoot
	}
	return sys, proc
}

// System is the "system" kind: the board's own health.
type System struct {
	name  string
	proc  string
	zones []string // thermal_zone*/temp files that read at construction
	keys  []string
}

// NewSystem is the "system" sensor kind; it takes no options. It reports
// temperature_c (the hottest thermal zone, in °C; only on machines with a
// zone that could be read at construction), load1, load5, load15,
// mem_used_pct, mem_available_mb and uptime_s, all as float64.
func NewSystem(s sensors.Spec) (sensors.Sensor, error) {
	if err := sensors.DecodeOptions(s, &struct{}{}); err != nil {
		return nil, err
	}
	sys, proc := roots(s.Env)
	found, err := filepath.Glob(filepath.Join(sys, "class", "thermal", "thermal_zone*", "temp"))
	if err != nil {
		return nil, err
	}
	x := &System{name: s.Name, proc: proc}
	for _, f := range found {
		// A zone that cannot be read now (some drivers refuse until a sensor
		// is enabled) is left out rather than failing every reading.
		if _, err := readMilliC(f); err == nil {
			x.zones = append(x.zones, f)
		}
	}
	if len(x.zones) > 0 {
		x.keys = append(x.keys, "temperature_c")
	}
	x.keys = append(x.keys, "load1", "load5", "load15", "mem_used_pct", "mem_available_mb", "uptime_s")
	return x, nil
}

// Name implements sensors.Sensor.
func (x *System) Name() string { return x.name }

// Type implements sensors.Sensor.
func (x *System) Type() string { return "system" }

// Keys implements sensors.Keyed: what this machine had at construction.
func (x *System) Keys() []string { return append([]string(nil), x.keys...) }

// Read implements sensors.Sensor.
func (x *System) Read(ctx context.Context) (sensors.Values, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v := sensors.Values{}
	if len(x.zones) > 0 {
		t, err := x.temperature()
		if err != nil {
			return nil, err
		}
		v["temperature_c"] = t
	}
	for _, f := range []struct {
		name  string
		parse func(name string, b []byte, v sensors.Values) error
	}{
		{"loadavg", parseLoadavg},
		{"meminfo", parseMeminfo},
		{"uptime", parseUptime},
	} {
		path := filepath.Join(x.proc, f.name)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err // names the path
		}
		if err := f.parse(path, b, v); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// temperature is the hottest zone that can be read now.
func (x *System) temperature() (float64, error) {
	best, n := math.Inf(-1), 0
	var firstErr error
	for _, f := range x.zones {
		t, err := readMilliC(f)
		var pe *parseError
		switch {
		case errors.As(err, &pe):
			return 0, err
		case err != nil:
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		n++
		best = math.Max(best, t)
	}
	if n == 0 {
		return 0, fmt.Errorf("no thermal zone could be read: %w", firstErr)
	}
	return best, nil
}

func readMilliC(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parseMilliC(path, b)
}

// parseError is a file whose content is not what the kernel writes.
type parseError struct {
	file string
	line int
	msg  string
}

func (e *parseError) Error() string {
	return fmt.Sprintf("%s line %d: %s", e.file, e.line, e.msg)
}

// parseMilliC reads a thermal zone's temp: millidegrees Celsius.
func parseMilliC(name string, b []byte) (float64, error) {
	s := string(bytes.TrimSpace(b))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, &parseError{name, 1, fmt.Sprintf("want millidegrees Celsius as an integer, got %q", clip(s))}
	}
	return float64(n) / 1000, nil
}

// parseLoadavg reads /proc/loadavg: "0.52 0.58 0.59 1/467 12345".
func parseLoadavg(name string, b []byte, v sensors.Values) error {
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 3 {
		return &parseError{name, 1, fmt.Sprintf("want three load averages, got %q", clip(line))}
	}
	for i, k := range []string{"load1", "load5", "load15"} {
		x, err := strconv.ParseFloat(f[i], 64)
		if err != nil || x < 0 || math.IsNaN(x) || math.IsInf(x, 0) {
			return &parseError{name, 1, fmt.Sprintf("%s: want a number, got %q", k, clip(f[i]))}
		}
		v[k] = x
	}
	return nil
}

// parseUptime reads /proc/uptime: "3612.45 13981.20", seconds up and idle.
func parseUptime(name string, b []byte, v sensors.Values) error {
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 1 {
		return &parseError{name, 1, "empty; want seconds since boot"}
	}
	x, err := strconv.ParseFloat(f[0], 64)
	if err != nil || x < 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return &parseError{name, 1, fmt.Sprintf("want seconds since boot, got %q", clip(f[0]))}
	}
	v["uptime_s"] = x
	return nil
}

// parseMeminfo reads /proc/meminfo's "Key:   value kB" lines into
// mem_used_pct and mem_available_mb. Kernels before 3.14 have no
// MemAvailable; MemFree+Buffers+Cached is the estimate they used.
func parseMeminfo(name string, b []byte, v sensors.Values) error {
	kb := map[string]uint64{}
	for i, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, rest, ok := strings.Cut(line, ":")
		f := strings.Fields(rest)
		if !ok || key == "" || len(f) < 1 || len(f) > 2 || (len(f) == 2 && f[1] != "kB") {
			return &parseError{name, i + 1, fmt.Sprintf("want \"Key: value [kB]\", got %q", clip(line))}
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return &parseError{name, i + 1, fmt.Sprintf("%s: want a whole number, got %q", key, clip(f[0]))}
		}
		kb[key] = n
	}
	total, ok := kb["MemTotal"]
	if !ok || total == 0 {
		return fmt.Errorf("%s: no MemTotal", name)
	}
	avail, ok := kb["MemAvailable"]
	if !ok {
		avail = kb["MemFree"] + kb["Buffers"] + kb["Cached"]
	}
	avail = min(avail, total)
	v["mem_used_pct"] = round2(float64(total-avail) / float64(total) * 100)
	v["mem_available_mb"] = round2(float64(avail) / 1024)
	return nil
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

type ledOptions struct {
	LED string `toml:"led"`
}

// LED is the "led" kind: /sys/class/leds/<led>/brightness.
type LED struct {
	name       string
	dir        string
	brightness string
	max        int

	mu   sync.Mutex
	last int // the last brightness written or read, for State when a read fails
}

// NewLED is the "led" actuator kind. Option led (required) is the LED's
// directory name under /sys/class/leds.
//
// Set takes true/false or "on"/"off" (on is max_brightness, off is 0), or a
// whole number 0..max_brightness written as is: 1 is brightness 1, which on
// the usual max_brightness = 1 LED is on, but dim on a PWM LED; send true or
// "on" for full brightness. Set and State return the brightness read back
// from the kernel, an int. If the LED has a trigger (heartbeat, mmc0), the
// kernel may change the brightness on its own; writing 0 removes the
// trigger.
func NewLED(s sensors.Spec) (sensors.Actuator, error) {
	var o ledOptions
	if err := sensors.DecodeOptions(s, &o); err != nil {
		return nil, err
	}
	sys, _ := roots(s.Env)
	leds := filepath.Join(sys, "class", "leds")
	if o.LED == "" {
		return nil, fmt.Errorf("%w: led is required: the LED's directory name in %s (%s)", sensors.ErrOption, leds, listLEDs(leds))
	}
	if o.LED == "." || o.LED == ".." || strings.ContainsAny(o.LED, `/\`) {
		return nil, fmt.Errorf("%w: led: want a directory name in %s, got %q", sensors.ErrOption, leds, o.LED)
	}
	dir := filepath.Join(leds, o.LED)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("no LED %q in %s (%s)", o.LED, leds, listLEDs(leds))
	}
	maxPath := filepath.Join(dir, "max_brightness")
	b, err := os.ReadFile(maxPath)
	if err != nil {
		return nil, err
	}
	m, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || m <= 0 {
		return nil, &parseError{maxPath, 1, fmt.Sprintf("want a positive whole number, got %q", clip(string(bytes.TrimSpace(b))))}
	}
	l := &LED{name: s.Name, dir: dir, brightness: filepath.Join(dir, "brightness"), max: m}
	if l.last, err = l.read(); err != nil {
		return nil, err
	}
	return l, nil
}

func listLEDs(dir string) string {
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		return "this machine has no LEDs there"
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return "found: " + strings.Join(names, ", ")
}

// Name implements sensors.Actuator.
func (l *LED) Name() string { return l.name }

// Type implements sensors.Actuator.
func (l *LED) Type() string { return "led" }

// Set implements sensors.Actuator; see NewLED for the values it takes. It
// returns the brightness read back (int).
func (l *LED) Set(ctx context.Context, v any) (any, error) {
	n, err := l.value(v)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.write(n); err != nil {
		return nil, err
	}
	l.last = n
	if got, err := l.read(); err == nil {
		l.last = got
	}
	return l.last, nil
}

func (l *LED) value(v any) (int, error) {
	switch x := v.(type) {
	case float64:
		if x >= 0 && x <= float64(l.max) && x == math.Trunc(x) {
			return int(x), nil
		}
	case bool, string:
		on, err := sensors.ParseSwitch(l.name, v)
		if err == nil {
			if on {
				return l.max, nil
			}
			return 0, nil
		}
	}
	return 0, fmt.Errorf("LED %q takes true/false, \"on\"/\"off\" or a brightness 0..%d, got %s: %w", l.name, l.max, sensors.DescribeValue(v), sensors.ErrBadValue)
}

// State implements sensors.Actuator: the brightness (int) the kernel
// reports now, or the last one known if it cannot be read.
func (l *LED) State() any {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n, err := l.read(); err == nil {
		l.last = n
	}
	return l.last
}

func (l *LED) read() (int, error) {
	b, err := os.ReadFile(l.brightness)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil {
		return 0, &parseError{l.brightness, 1, fmt.Sprintf("want a whole number, got %q", clip(string(bytes.TrimSpace(b))))}
	}
	return n, nil
}

// write sets the brightness. No O_CREATE: a missing file is an error, not a
// new file in /sys.
func (l *LED) write(n int) error {
	f, err := os.OpenFile(l.brightness, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("LED %q: %w (the agent needs write access: run as root or add a udev rule for this LED)", l.name, err)
		}
		return fmt.Errorf("LED %q: %w", l.name, err)
	}
	_, err = fmt.Fprintf(f, "%d\n", n)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("LED %q: write brightness %d to %s: %w", l.name, n, l.brightness, err)
	}
	return nil
}

var (
	_ sensors.Keyed = (*System)(nil)
)
