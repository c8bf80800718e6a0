package gpio

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/edgeagent/agent/sensors"
	"github.com/edgeagent/agent/sensors/clocktest"
)

// wait bounds every wait on the code under test: a failure, not a hang.
const wait = 5 * time.Second

func env(pins map[string]gpio.PinIO, clk sensors.Clock) *sensors.Env {
	return &sensors.Env{
		Pin: func(name string) (gpio.PinIO, error) {
			if p, ok := pins[name]; ok {
				return p, nil
			}
			return nil, errors.New("no such line")
		},
		Clock:  clk,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func newPin() *gpiotest.Pin {
	return &gpiotest.Pin{N: "GPIO17", Num: 17, EdgesChan: make(chan gpio.Level)}
}

func newInput(t *testing.T, p *gpiotest.Pin, clk sensors.Clock, opts map[string]any) *Input {
	t.Helper()
	opts["pin"] = "GPIO17"
	s, err := NewInput(sensors.Spec{Name: "door", Type: "gpio-in", Options: opts, Env: env(map[string]gpio.PinIO{"GPIO17": p}, clk)})
	if err != nil {
		t.Fatalf("NewInput: %v", err)
	}
	return s.(*Input)
}

// watch runs in.Watch and gives the test a script to drive it with.
type watch struct {
	t      *testing.T
	pin    *gpiotest.Pin
	clk    *clocktest.Clock
	traces chan string
	events chan sensors.Values
	cancel context.CancelFunc
	done   chan error
}

func startWatch(t *testing.T, in *Input, p *gpiotest.Pin, clk *clocktest.Clock) *watch {
	w := &watch{t: t, pin: p, clk: clk, traces: make(chan string, 64), events: make(chan sensors.Values, 64), done: make(chan error, 1)}
	in.trace = func(ev string) { w.traces <- ev }
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go func() { w.done <- in.Watch(ctx, func(v sensors.Values) { w.events <- v }) }()
	t.Cleanup(func() { w.stop() })
	return w
}

func (w *watch) expectTrace(want string) {
	w.t.Helper()
	select {
	case got := <-w.traces:
		if got != want {
			w.t.Fatalf("Watch did %q, want %q", got, want)
		}
	case <-time.After(wait):
		w.t.Fatalf("Watch did not report %q within %v", want, wait)
	}
}

// edge makes the line go to l and waits until Watch has taken it in.
func (w *watch) edge(l gpio.Level) {
	w.t.Helper()
	select {
	case w.pin.EdgesChan <- l:
	case <-time.After(wait):
		w.t.Fatalf("Watch did not wait for an edge within %v", wait)
	}
	w.expectTrace("edge")
}

// advance moves the clock; settles says whether that ends a debounce window.
func (w *watch) advance(d time.Duration, settles bool) {
	w.t.Helper()
	w.clk.Advance(d)
	if settles {
		w.expectTrace("settled")
	}
}

// stop cancels Watch and returns what it emitted.
func (w *watch) stop() []sensors.Values {
	w.t.Helper()
	w.cancel()
	select {
	case err := <-w.done:
		if err != nil {
			w.t.Errorf("Watch returned %v after cancel, want nil", err)
		}
	case <-time.After(wait):
		w.t.Fatalf("Watch did not return within %v of cancel", wait)
	}
	w.done <- nil // for a second stop from Cleanup
	var got []sensors.Values
	for {
		select {
		case v := <-w.events:
			got = append(got, v)
		default:
			return got
		}
	}
}

func levels(ls ...bool) []sensors.Values {
	var out []sensors.Values
	for _, l := range ls {
		out = append(out, sensors.Values{"level": l})
	}
	return out
}

func TestWatchDebounce(t *testing.T) {
	const ms = time.Millisecond
	H, L := gpio.High, gpio.Low
	type step struct {
		edge    *gpio.Level
		advance time.Duration
		settles bool
	}
	e := func(l gpio.Level) step { return step{edge: &l} }
	a := func(d time.Duration, settles bool) step { return step{advance: d, settles: settles} }
	for _, tc := range []struct {
		name  string
		opts  map[string]any
		steps []step
		want  []sensors.Values
	}{
		{"bounce shorter than debounce is one event", map[string]any{},
			[]step{e(H), a(5*ms, false), e(L), a(5*ms, false), e(H), a(19*ms, false), a(1*ms, true)},
			levels(true)},
		{"level held past debounce", map[string]any{},
			[]step{e(H), a(50*ms, true), a(time.Second, false)},
			levels(true)},
		{"bounce back to where it was is nothing", map[string]any{},
			[]step{e(H), a(5*ms, false), e(L), a(20*ms, true)},
			nil},
		{"press and release", map[string]any{},
			[]step{e(H), a(20*ms, true), e(L), a(3*ms, false), e(H), a(3*ms, false), e(L), a(20*ms, true)},
			levels(true, false)},
		{"rising only", map[string]any{"edge": "rising"},
			[]step{e(H), a(20*ms, true), e(L), a(20*ms, true), e(H), a(20*ms, true)},
			levels(true, true)},
		{"falling only", map[string]any{"edge": "falling"},
			[]step{e(H), a(20*ms, true), e(L), a(20*ms, true)},
			levels(false)},
		{"active low inverts", map[string]any{"active_low": true},
			[]step{e(H), a(20*ms, true), e(L), a(20*ms, true)},
			levels(false, true)},
		{"active low rising is the line falling", map[string]any{"active_low": true, "edge": "rising"},
			[]step{e(H), a(20*ms, true), e(L), a(20*ms, true)},
			levels(true)},
		{"longer debounce", map[string]any{"debounce": "100ms"},
			[]step{e(H), a(50*ms, false), e(L), a(50*ms, false), e(H), a(99*ms, false), a(ms, true)},
			levels(true)},
		{"no debounce reports each edge", map[string]any{"debounce": "0s"},
			[]step{e(H), e(L)},
			levels(true, false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPin()
			clk := clocktest.New(time.Unix(0, 0))
			in := newInput(t, p, clk, tc.opts)
			w := startWatch(t, in, p, clk)
			for _, s := range tc.steps {
				if s.edge != nil {
					w.edge(*s.edge)
				} else {
					w.advance(s.advance, s.settles)
				}
			}
			got := w.stop()
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("emitted %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWatchStopsPromptly(t *testing.T) {
	p := newPin()
	in := newInput(t, p, clocktest.New(time.Unix(0, 0)), map[string]any{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Watch(ctx, func(sensors.Values) {}) }()
	// Let it get into WaitForEdge; the bound below holds either way.
	select {
	case p.EdgesChan <- gpio.High:
	case <-time.After(wait):
		t.Fatal("Watch did not wait for an edge")
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Watch returned %v, want nil", err)
		}
		if d := time.Since(start); d > pollEvery+time.Second {
			t.Errorf("Watch took %v to return after cancel, want about %v", d, pollEvery)
		}
	case <-time.After(wait):
		t.Fatalf("Watch still running %v after cancel", wait)
	}
	// A second Watch may start once the first has returned.
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := in.Watch(ctx2, func(sensors.Values) {}); err != nil {
		t.Errorf("second Watch: %v", err)
	}
}

func TestWatchTwiceAtOnce(t *testing.T) {
	p := newPin()
	in := newInput(t, p, clocktest.New(time.Unix(0, 0)), map[string]any{})
	w := startWatch(t, in, p, clocktest.New(time.Unix(0, 0)))
	w.edge(gpio.High) // the first Watch is surely running
	if err := in.Watch(context.Background(), func(sensors.Values) {}); err == nil || !strings.Contains(err.Error(), "already being watched") {
		t.Errorf("second concurrent Watch: got %v, want an already-watched error", err)
	}
}

func TestInputRead(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts map[string]any
		line gpio.Level
		want bool
	}{
		{"high", map[string]any{}, gpio.High, true},
		{"low", map[string]any{}, gpio.Low, false},
		{"active low high", map[string]any{"active_low": true}, gpio.High, false},
		{"active low low", map[string]any{"active_low": true}, gpio.Low, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPin()
			in := newInput(t, p, nil, tc.opts)
			p.Out(tc.line)
			got, err := in.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if want := (sensors.Values{"level": tc.want}); !reflect.DeepEqual(got, want) {
				t.Errorf("Read = %v, want %v", got, want)
			}
		})
	}
	p := newPin()
	in := newInput(t, p, nil, map[string]any{})
	if got := in.Keys(); !reflect.DeepEqual(got, []string{"level"}) {
		t.Errorf("Keys = %v, want [level]", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := in.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Read after cancel: %v, want context.Canceled", err)
	}
}

func TestInputPull(t *testing.T) {
	for _, tc := range []struct {
		pull string
		want gpio.Pull
	}{
		{"up", gpio.PullUp},
		{"down", gpio.PullDown},
		{"none", gpio.Float},
		{"", gpio.Float}, // default
	} {
		t.Run(tc.pull, func(t *testing.T) {
			p := newPin()
			opts := map[string]any{}
			if tc.pull != "" {
				opts["pull"] = tc.pull
			}
			newInput(t, p, nil, opts)
			if got := p.Pull(); got != tc.want {
				t.Errorf("pin pull = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestInputOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts map[string]any
		want []string
	}{
		{"unknown option", map[string]any{"pin": "GPIO17", "bounce": "5ms"}, []string{"unknown option", "bounce"}},
		{"no pin", map[string]any{}, []string{"pin is required", "gpioinfo"}},
		{"unknown pin", map[string]any{"pin": "GPIO99"}, []string{"GPIO99", "no such line", "gpioinfo", "/sys/kernel/debug/gpio"}},
		{"bad edge", map[string]any{"pin": "GPIO17", "edge": "up"}, []string{"edge", `"up"`}},
		{"bad pull", map[string]any{"pin": "GPIO17", "pull": "sideways"}, []string{"pull", "sideways"}},
		{"bad debounce", map[string]any{"pin": "GPIO17", "debounce": "20"}, []string{"debounce", `"20"`}},
		{"negative debounce", map[string]any{"pin": "GPIO17", "debounce": "-1s"}, []string{"debounce"}},
		{"wrong type", map[string]any{"pin": "GPIO17", "active_low": "yes"}, []string{"active_low"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewInput(sensors.Spec{Name: "door", Type: "gpio-in", Options: tc.opts, Env: env(map[string]gpio.PinIO{"GPIO17": newPin()}, nil)})
			if err == nil {
				t.Fatal("NewInput succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestInputNeedsEdgeSupport(t *testing.T) {
	p := &gpiotest.Pin{N: "GPIO17"} // no EdgesChan: In with edges fails
	_, err := NewInput(sensors.Spec{Name: "door", Type: "gpio-in", Options: map[string]any{"pin": "GPIO17"}, Env: env(map[string]gpio.PinIO{"GPIO17": p}, nil)})
	if err == nil || !strings.Contains(err.Error(), "GPIO17") {
		t.Errorf("got %v, want an error naming the pin", err)
	}
}
