package gpio

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/edgeagent/agent/sensors"
)

// Sensors are this package's sensor kinds by config type name.
var Sensors = map[string]func(sensors.Spec) (sensors.Sensor, error){
	"gpio-in": NewInput,
}

// Actuators are this package's actuator kinds by config type name.
var Actuators = map[string]func(sensors.Spec) (sensors.Actuator, error){
	"gpio-out": NewOutput,
}

// pollEvery bounds each WaitForEdge call, and so how long Watch takes to
// return once its context ends: periph has no way to interrupt a wait that
// works on every driver (Halt on some drivers also turns edge detection off).
const pollEvery = 100 * time.Millisecond

// findLines is appended to errors about a pin that cannot be had.
const findLines = `name a line as "GPIO17" (Raspberry Pi) or "gpiochipN/L" (any board); list lines with gpioinfo (libgpiod) or, as root, cat /sys/kernel/debug/gpio`

type inOptions struct {
	Pin       string `toml:"pin"`
	Edge      string `toml:"edge"`
	Debounce  string `toml:"debounce"`
	Pull      string `toml:"pull"`
	ActiveLow bool   `toml:"active_low"`
}

// Input is the "gpio-in" kind: a debounced digital input.
type Input struct {
	name      string
	pinName   string
	pin       gpio.PinIO
	edge      gpio.Edge // which changes of the reported level Watch emits
	debounce  time.Duration
	activeLow bool
	clock     sensors.Clock

	poll     time.Duration
	watching atomic.Bool
	// trace, when set by tests, is told "edge" after Watch has taken in an
	// edge and "settled" after it has judged a level stable, so tests step
	// the fake clock in lockstep without sleeping.
	trace func(event string)
}

// NewInput is the "gpio-in" sensor kind. Options: pin (required), edge
// ("rising", "falling" or "both", default both), debounce (a duration,
// default "20ms"), pull ("up", "down" or "none", default none), active_low.
//
// The line's hardware edge detection is always set to both edges, whatever
// edge says: debouncing needs to see the level go back as well as come, and
// with active_low the physical edge is the opposite of the reported one.
// edge filters the reported level's changes: "rising" emits when level
// becomes true.
func NewInput(s sensors.Spec) (sensors.Sensor, error) {
	o := inOptions{Edge: "both", Debounce: "20ms", Pull: "none"}
	if err := sensors.DecodeOptions(s, &o); err != nil {
		return nil, err
	}
	in := &Input{name: s.Name, pinName: o.Pin, activeLow: o.ActiveLow, poll: pollEvery}
	var err error
	if in.edge, err = parseEdge(o.Edge); err != nil {
		return nil, err
	}
	if in.debounce, err = time.ParseDuration(o.Debounce); err != nil || in.debounce < 0 {
		return nil, fmt.Errorf("%w: debounce: want a duration such as \"20ms\", got %q", sensors.ErrOption, o.Debounce)
	}
	pull, err := parsePull(o.Pull)
	if err != nil {
		return nil, err
	}
	if in.pin, err = openPin(s, o.Pin); err != nil {
		return nil, err
	}
	in.clock = sensors.RealClock{}
	if s.Env.Clock != nil {
		in.clock = s.Env.Clock
	}
	if err := in.pin.In(pull, gpio.BothEdges); err != nil {
		return nil, fmt.Errorf("pin %s: set as input with pull %s and edge detection: %w", o.Pin, pull, err)
	}
	return in, nil
}

func parseEdge(s string) (gpio.Edge, error) {
	switch strings.ToLower(s) {
	case "rising":
		return gpio.RisingEdge, nil
	case "falling":
		return gpio.FallingEdge, nil
	case "both":
		return gpio.BothEdges, nil
	}
	return gpio.NoEdge, fmt.Errorf("%w: edge: want \"rising\", \"falling\" or \"both\", got %q", sensors.ErrOption, s)
}

func parsePull(s string) (gpio.Pull, error) {
	switch strings.ToLower(s) {
	case "up":
		return gpio.PullUp, nil
	case "down":
		return gpio.PullDown, nil
	case "none":
		return gpio.Float, nil
	}
	return gpio.PullNoChange, fmt.Errorf("%w: pull: want \"up\", \"down\" or \"none\", got %q", sensors.ErrOption, s)
}

// openPin gets the line named by the pin option from the Env.
func openPin(s sensors.Spec, name string) (gpio.PinIO, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: pin is required: %s", sensors.ErrOption, findLines)
	}
	if s.Env == nil || s.Env.Pin == nil {
		return nil, fmt.Errorf("pin %s: this agent has no GPIO access configured", name)
	}
	p, err := s.Env.Pin(name)
	if err != nil {
		return nil, fmt.Errorf("pin %s: %w; %s", name, err, findLines)
	}
	if p == nil {
		return nil, fmt.Errorf("pin %s: no such line; %s", name, findLines)
	}
	return p, nil
}

// Name implements sensors.Sensor.
func (in *Input) Name() string { return in.name }

// Type implements sensors.Sensor.
func (in *Input) Type() string { return "gpio-in" }

// Keys implements sensors.Keyed.
func (in *Input) Keys() []string { return []string{"level"} }

// Read implements sensors.Sensor: the level now, undebounced, after
// active_low.
func (in *Input) Read(ctx context.Context) (sensors.Values, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return sensors.Values{"level": in.level()}, nil
}

func (in *Input) level() bool { return (in.pin.Read() == gpio.High) != in.activeLow }

// Watch implements sensors.Watcher. It emits {"level": bool} once for each
// change of level that stays put for the debounce time (measured on
// Env.Clock) and matches edge; bounces inside the window are swallowed, and a
// level that bounces back to where it was emits nothing. The level when Watch
// starts is the baseline and is not emitted.
//
// Edges are taken by a goroutine that waits at most 100ms at a time, so once
// ctx ends Watch returns nil within about that long, after that goroutine
// has exited. Only one Watch may run at a time on an input.
func (in *Input) Watch(ctx context.Context, emit func(sensors.Values)) error {
	if !in.watching.CompareAndSwap(false, true) {
		return fmt.Errorf("gpio-in %q: pin %s is already being watched", in.name, in.pinName)
	}
	defer in.watching.Store(false)

	// The starting level is read before edges are watched, so an edge in
	// between is seen as a change rather than taken for the start.
	reported := in.level()
	wctx, cancel := context.WithCancel(ctx)
	edges := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		in.waitEdges(wctx, edges)
	}()
	defer func() { cancel(); <-done }()

	var timer sensors.Timer
	var fire <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	settle := func() {
		l := in.level()
		if l == reported {
			return
		}
		reported = l
		if in.edge == gpio.BothEdges || (in.edge == gpio.RisingEdge) == l {
			emit(sensors.Values{"level": l})
		}
	}
	onEdge := func() {
		switch {
		case in.debounce <= 0:
			settle()
		case timer == nil:
			timer = in.clock.NewTimer(in.debounce)
			fire = timer.C()
		default:
			timer.Reset(in.debounce)
		}
		in.tracef("edge")
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-edges:
			onEdge()
		case <-fire:
			// An edge that came with the deadline means the level was not
			// quiet for the whole window: start it again.
			select {
			case <-edges:
				onEdge()
				continue
			default:
			}
			settle()
			in.tracef("settled")
		}
	}
}

// waitEdges passes each edge the pin reports to edges until ctx ends.
func (in *Input) waitEdges(ctx context.Context, edges chan<- struct{}) {
	for ctx.Err() == nil {
		start := time.Now()
		if !in.pin.WaitForEdge(in.poll) {
			// A wait that ends well before its timeout means the line is not
			// waiting at all (a driver that lost its edge setup returns
			// false at once): pause rather than spin.
			if rest := in.poll - time.Since(start); rest > in.poll/2 {
				t := time.NewTimer(rest)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
			}
			continue
		}
		select {
		case edges <- struct{}{}:
		case <-ctx.Done():
			return
		}
	}
}

func (in *Input) tracef(event string) {
	if in.trace != nil {
		in.trace(event)
	}
}

type outOptions struct {
	Pin       string `toml:"pin"`
	Initial   string `toml:"initial"`
	OnStop    string `toml:"on_stop"`
	ActiveLow bool   `toml:"active_low"`
}

// Output is the "gpio-out" kind: a line switched on or off.
type Output struct {
	name      string
	pinName   string
	pin       gpio.PinIO
	activeLow bool
	onStop    string // "keep", "off" or "on"

	mu sync.Mutex
	on bool
}

// NewOutput is the "gpio-out" actuator kind. Options: pin (required),
// initial ("on" or "off", default off; driven at construction), on_stop
// ("keep", "off" or "on", default keep; applied by Close), active_low (on
// drives the line low).
func NewOutput(s sensors.Spec) (sensors.Actuator, error) {
	o := outOptions{Initial: "off", OnStop: "keep"}
	if err := sensors.DecodeOptions(s, &o); err != nil {
		return nil, err
	}
	var initial bool
	switch strings.ToLower(o.Initial) {
	case "on":
		initial = true
	case "off":
	default:
		return nil, fmt.Errorf("%w: initial: want \"on\" or \"off\", got %q", sensors.ErrOption, o.Initial)
	}
	out := &Output{name: s.Name, pinName: o.Pin, activeLow: o.ActiveLow, onStop: strings.ToLower(o.OnStop)}
	switch out.onStop {
	case "keep", "off", "on":
	default:
		return nil, fmt.Errorf("%w: on_stop: want \"keep\", \"off\" or \"on\", got %q", sensors.ErrOption, o.OnStop)
	}
	var err error
	if out.pin, err = openPin(s, o.Pin); err != nil {
		return nil, err
	}
	if err := out.drive(initial); err != nil {
		return nil, fmt.Errorf("initial: %w", err)
	}
	return out, nil
}

// Name implements sensors.Actuator.
func (out *Output) Name() string { return out.name }

// Type implements sensors.Actuator.
func (out *Output) Type() string { return "gpio-out" }

// Set implements sensors.Actuator: v is true/false, 0/1 or "on"/"off"; it
// returns the logical state (bool) now in force.
func (out *Output) Set(ctx context.Context, v any) (any, error) {
	on, err := sensors.ParseSwitch(out.name, v)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := out.drive(on); err != nil {
		return nil, err
	}
	return on, nil
}

// State implements sensors.Actuator: the logical state (bool) last driven.
func (out *Output) State() any {
	out.mu.Lock()
	defer out.mu.Unlock()
	return out.on
}

// Close implements sensors.Closer: it applies on_stop.
func (out *Output) Close() error {
	switch out.onStop {
	case "on":
		return out.drive(true)
	case "off":
		return out.drive(false)
	}
	return nil
}

func (out *Output) drive(on bool) error {
	out.mu.Lock()
	defer out.mu.Unlock()
	l := gpio.Level(on != out.activeLow)
	if err := out.pin.Out(l); err != nil {
		return fmt.Errorf("pin %s: drive %s (%s): %w", out.pinName, onOff(on), l, err)
	}
	out.on = on
	return nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

var (
	_ sensors.Watcher = (*Input)(nil)
	_ sensors.Keyed   = (*Input)(nil)
	_ sensors.Closer  = (*Output)(nil)
)
