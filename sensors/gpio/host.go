package gpio

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3/gpioioctl"
)

// HostPin finds a line on this machine, for the daemon's Env.Pin. name is a
// name periph's registry knows ("GPIO17" on a Pi, or a line name the kernel
// gives, as gpioinfo shows it), or "gpiochipN/L" for line offset L (or line
// name L) on /dev/gpiochipN through the kernel's GPIO character device,
// which works on any board, including those periph has no board driver for.
//
// It does not call host.Init: the daemon does that once, before building
// the kinds, and HostPin only looks in what that registered.
func HostPin(name string) (gpio.PinIO, error) {
	chipName, line, ok := strings.Cut(name, "/")
	if !ok {
		if p := gpioreg.ByName(name); p != nil {
			return p, nil
		}
		return nil, fmt.Errorf("no GPIO line named %q is registered (was host.Init called?)", name)
	}
	return chipLine(gpioioctl.Chips, chipName, line)
}

// chipLine finds line (an offset or a line name) on the chip named chipName.
func chipLine(chips []*gpioioctl.GPIOChip, chipName, line string) (gpio.PinIO, error) {
	if len(chips) == 0 {
		return nil, fmt.Errorf("no GPIO chips found: is there a /dev/gpiochip* this user can open, and was host.Init called?")
	}
	var names []string
	for _, c := range chips {
		names = append(names, c.Name())
		if c.Name() != chipName {
			continue
		}
		if n, err := strconv.Atoi(line); err == nil {
			// Checked here because ByNumber logs out-of-range requests.
			if n < 0 || n >= c.LineCount() {
				return nil, fmt.Errorf("%s has lines 0..%d, not %d", chipName, c.LineCount()-1, n)
			}
			if l := c.ByNumber(n); l != nil {
				return l, nil
			}
			return nil, fmt.Errorf("%s has no line %d", chipName, n)
		}
		if l := c.ByName(line); l != nil {
			return l, nil
		}
		return nil, fmt.Errorf("%s has no line named %q", chipName, line)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("no GPIO chip %q (found: %s)", chipName, strings.Join(names, ", "))
}
