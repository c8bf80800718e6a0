// Package gpio holds the GPIO sensor and actuator kinds: "gpio-in", a
// debounced input that reports its level when read and, as a
// sensors.Watcher, on each accepted change; and "gpio-out", a line driven on
// or off. Both take their line from sensors.Env.Pin as a periph
// gpio.PinIO, so tests hand in gpiotest.Pin and a fake clock, and the
// daemon hands in HostPin after calling host.Init once.
//
//	[[sensor]]
//	name = "door"
//	type = "gpio-in"
//	pin = "GPIO17"          # or "gpiochip0/17"
//	pull = "up"
//	active_low = true       # closed contact to ground reads as level = true
//	edge = "both"
//	debounce = "20ms"
//
//	[[actuator]]
//	name = "pump"
//	type = "gpio-out"
//	pin = "gpiochip3/12"
//	initial = "off"
//	on_stop = "off"
//
// # Finding a line
//
// On a Raspberry Pi, periph knows the board, so "GPIO17" (the BCM number) is
// enough. On boards periph has no driver for, such as the ROCK and ARTIK
// boards, name the line as "gpiochipN/L": chip N, line offset L on that chip.
// Run gpioinfo (from libgpiod: apt install gpiod) to list every chip with its
// lines' offsets, names and current users, and pick the chip and offset. Or,
// as root, read /sys/kernel/debug/gpio: each chip shows its range of global
// numbers ("gpiochip3: GPIOs 96-127"), and the offset is the global number
// the board's documentation gives minus the chip's first number (GPIO 108 is
// gpiochip3/12). Rockchip pin names translate directly: GPIO3_B4 is bank 3,
// offset 8×1 (A=0, B=1, C=2, D=3) + 4, so "gpiochip3/12". A line named in
// gpioinfo can also be given by that name alone, or as "gpiochipN/NAME".
package gpio
