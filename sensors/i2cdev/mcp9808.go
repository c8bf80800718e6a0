package i2cdev

import (
	"context"
	"fmt"

	"github.com/edgeagent/agent/sensors"
	"periph.io/x/devices/v3/mcp9808"
)

type mcp9808Options struct {
	busOptions
	// ResolutionC is the step in °C; finer steps take longer per
	// conversion (30 ms at 0.5 °C, 250 ms at 0.0625 °C).
	ResolutionC *float64 `toml:"resolution_c"`
}

// MCP9808 datasheet: addresses 0x18..0x1f; accuracy specified -40..125 °C.
var mcp9808Chip = chip{
	kind:   "mcp9808",
	addrs:  []uint16{0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f},
	keys:   []string{"temperature_c"},
	ranges: map[string]sensors.Range{"temperature_c": {Min: -40, Max: 125}},
}

type mcp9808Sensor struct {
	*device
	dev *mcp9808.Dev
}

// NewMCP9808 is the "mcp9808" kind: temperature.
func NewMCP9808(s sensors.Spec) (sensors.Sensor, error) {
	var o mcp9808Options
	if err := sensors.DecodeOptions(s, &o); err != nil {
		return nil, err
	}
	res := mcp9808.Maximum
	if o.ResolutionC != nil {
		switch *o.ResolutionC {
		case 0.0625:
			res = mcp9808.Maximum
		case 0.125:
			res = mcp9808.High
		case 0.25:
			res = mcp9808.Medium
		case 0.5:
			res = mcp9808.Low
		default:
			return nil, optionErr(mcp9808Chip.kind, "resolution_c", *o.ResolutionC, "0.0625, 0.125, 0.25, 0.5")
		}
	}
	d, b, err := open(s, mcp9808Chip, o.busOptions)
	if err != nil {
		return nil, err
	}
	dev, err := mcp9808.New(b, &mcp9808.Opts{Addr: int(d.addr), Res: res})
	if err != nil {
		return nil, d.errorf("init: %w", err)
	}
	return &mcp9808Sensor{device: d, dev: dev}, nil
}

func (s *mcp9808Sensor) Read(ctx context.Context) (sensors.Values, error) {
	return s.read(ctx, func(context.Context) (sensors.Values, error) {
		t, err := s.dev.SenseTemp()
		if err != nil {
			return nil, fmt.Errorf("read measurement: %w", err)
		}
		// 0.0625 °C steps: four decimals keep them exact.
		return sensors.Values{"temperature_c": round(t.Celsius(), 4)}, nil
	})
}
