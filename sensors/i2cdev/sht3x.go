package i2cdev

import (
	"context"
	"fmt"
	"time"

	"github.com/edgeagent/agent/sensors"
	"periph.io/x/conn/v3/i2c"
)

// From Sensirion's SHT3x-DIS datasheet.
var (
	// Single shot, high repeatability, clock stretching disabled (table 9).
	sht3xMeasureHigh = []byte{0x24, 0x00}
)

const (
	// Table 4: high repeatability takes at most 15 ms; reading earlier is
	// NACKed.
	sht3xMeasureTime = 16 * time.Millisecond // 15.5 ms max for high repeatability in later datasheet revisions
	// Section 4.12: CRC-8, polynomial 0x31 (x⁸+x⁵+x⁴+1), init 0xFF.
	sht3xCRCPoly = 0x31
	sht3xCRCInit = 0xFF
)

var sht3xChip = chip{
	kind:  "sht3x",
	addrs: []uint16{0x44, 0x45},
	keys:  []string{"temperature_c", "humidity_pct"},
	// Table 1/2: measurement range -40..125 °C, 0..100 %RH.
	ranges: map[string]sensors.Range{
		"temperature_c": {Min: -40, Max: 125},
		"humidity_pct":  {Min: 0, Max: 100},
	},
}

type sht3xSensor struct {
	*device
	dev i2c.Dev
}

// NewSHT3x is the "sht3x" kind (SHT30/31/35): temperature and humidity.
// Construction does no I/O; the chip is first spoken to by Read.
func NewSHT3x(s sensors.Spec) (sensors.Sensor, error) {
	var o busOptions
	if err := sensors.DecodeOptions(s, &o); err != nil {
		return nil, err
	}
	d, b, err := open(s, sht3xChip, o)
	if err != nil {
		return nil, err
	}
	return &sht3xSensor{device: d, dev: i2c.Dev{Bus: b, Addr: d.addr}}, nil
}

func (s *sht3xSensor) Read(ctx context.Context) (sensors.Values, error) {
	return s.read(ctx, func(ctx context.Context) (sensors.Values, error) {
		if err := s.dev.Tx(sht3xMeasureHigh, nil); err != nil {
			return nil, fmt.Errorf("start measurement: %w", err)
		}
		if err := wait(ctx, s.clock, sht3xMeasureTime); err != nil {
			return nil, err
		}
		var buf [6]byte
		if err := s.dev.Tx(nil, buf[:]); err != nil {
			return nil, fmt.Errorf("read measurement: %w", err)
		}
		t, rh, err := decodeSHT3x(buf)
		if err != nil {
			return nil, fmt.Errorf("read measurement: %w", err)
		}
		return sensors.Values{"temperature_c": round(t, 2), "humidity_pct": round(rh, 2)}, nil
	})
}

// decodeSHT3x checks and converts a measurement: temperature word, its
// CRC, humidity word, its CRC (datasheet section 4.13).
func decodeSHT3x(b [6]byte) (tempC, rhPct float64, err error) {
	if got, want := b[2], crc8(b[0:2]); got != want {
		return 0, 0, fmt.Errorf("%w on temperature word (got 0x%02x, want 0x%02x)", ErrCRC, got, want)
	}
	if got, want := b[5], crc8(b[3:5]); got != want {
		return 0, 0, fmt.Errorf("%w on humidity word (got 0x%02x, want 0x%02x)", ErrCRC, got, want)
	}
	st := float64(uint16(b[0])<<8 | uint16(b[1]))
	srh := float64(uint16(b[3])<<8 | uint16(b[4]))
	return -45 + 175*st/65535, 100 * srh / 65535, nil
}

// crc8 is Sensirion's checksum over a 16-bit word.
func crc8(b []byte) byte {
	crc := byte(sht3xCRCInit)
	for _, x := range b {
		crc ^= x
		for range 8 {
			if crc&0x80 != 0 {
				crc = crc<<1 ^ sht3xCRCPoly
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
