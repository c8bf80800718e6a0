package sysfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/edgeagent/agent/sensors"
)

func board(t *testing.T) *sensors.Env {
	t.Helper()
	return &sensors.Env{SysRoot: filepath.Join("testdata", "board", "sys"), ProcRoot: filepath.Join("testdata", "board", "proc")}
}

// boardCopy is a writable copy of the fixture board.
func boardCopy(t *testing.T) *sensors.Env {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", "board"))); err != nil {
		t.Fatal(err)
	}
	return &sensors.Env{SysRoot: filepath.Join(dir, "sys"), ProcRoot: filepath.Join(dir, "proc")}
}

func TestSystemRead(t *testing.T) {
	s, err := NewSystem(sensors.Spec{Name: "board", Type: "system", Env: board(t)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := sensors.Values{
		"temperature_c":    51.875, // the hotter of the two zones
		"load1":            0.52,
		"load5":            0.58,
		"load15":           0.59,
		"mem_used_pct":     25.01, // (3882700-2911760)/3882700
		"mem_available_mb": 2843.52,
		"uptime_s":         3612.45,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Read = %v\nwant %v", got, want)
	}
	keys := s.(sensors.Keyed).Keys()
	if len(keys) != len(want) {
		t.Errorf("Keys = %v, want the keys of %v", keys, want)
	}
	for _, k := range keys {
		if _, ok := got[k]; !ok {
			t.Errorf("Keys has %q, Read does not", k)
		}
	}
}

func TestSystemNoThermal(t *testing.T) {
	env := board(t)
	env.SysRoot = t.TempDir()
	s, err := NewSystem(sensors.Spec{Name: "board", Type: "system", Env: env})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"load1", "load5", "load15", "mem_used_pct", "mem_available_mb", "uptime_s"}
	if got := s.(sensors.Keyed).Keys(); !reflect.DeepEqual(got, want) {
		t.Errorf("Keys = %v, want %v", got, want)
	}
	v, err := s.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := v["temperature_c"]; ok {
		t.Errorf("Read has temperature_c on a machine without thermal zones: %v", v)
	}
}

func TestSystemThermalZones(t *testing.T) {
	env := boardCopy(t)
	zone := func(n string) string { return filepath.Join(env.SysRoot, "class", "thermal", "thermal_zone"+n, "temp") }
	// Zone 1 vanishing after construction leaves zone 0.
	s, err := NewSystem(sensors.Spec{Name: "board", Type: "system", Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(zone("1")); err != nil {
		t.Fatal(err)
	}
	v, err := s.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v["temperature_c"] != 47.25 {
		t.Errorf("temperature_c = %v, want 47.25 from the zone left", v["temperature_c"])
	}
	// A zone whose content is not a number is an error naming it.
	if err := os.WriteFile(zone("0"), []byte("hot\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = s.Read(context.Background())
	if err == nil || !strings.Contains(err.Error(), zone("0")+" line 1") {
		t.Errorf("Read with a malformed zone: %v, want an error naming %s line 1", err, zone("0"))
	}
	// No zone readable: an error, not a missing key.
	os.Remove(zone("0"))
	if _, err := s.Read(context.Background()); err == nil || !strings.Contains(err.Error(), "no thermal zone") {
		t.Errorf("Read with no zone left: %v, want a no-thermal-zone error", err)
	}
}

func TestSystemMalformed(t *testing.T) {
	env := &sensors.Env{SysRoot: t.TempDir(), ProcRoot: filepath.Join("testdata", "malformed", "proc")}
	s, err := NewSystem(sensors.Spec{Name: "board", Type: "system", Env: env})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Read(context.Background())
	want := filepath.Join("testdata", "malformed", "proc", "meminfo") + " line 3"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "MemAvailable") {
		t.Errorf("Read = %v, want an error naming %q and the line", err, want)
	}
}

func TestSystemMissingProc(t *testing.T) {
	env := &sensors.Env{SysRoot: t.TempDir(), ProcRoot: t.TempDir()}
	s, err := NewSystem(sensors.Spec{Name: "board", Type: "system", Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(context.Background()); err == nil || !strings.Contains(err.Error(), "loadavg") {
		t.Errorf("Read with no /proc files: %v, want an error naming loadavg", err)
	}
}

func TestSystemOptions(t *testing.T) {
	_, err := NewSystem(sensors.Spec{Name: "board", Type: "system", Options: map[string]any{"zone": "cpu"}, Env: board(t)})
	if !errors.Is(err, sensors.ErrOption) || !strings.Contains(err.Error(), "zone") {
		t.Errorf("unknown option: %v, want ErrOption naming it", err)
	}
}

func TestParsers(t *testing.T) {
	type parser func(name string, b []byte, v sensors.Values) error
	for _, tc := range []struct {
		name  string
		parse parser
		in    string
		want  sensors.Values
		err   string // substring; "" for success
	}{
		{"loadavg", parseLoadavg, "1.00 2.50 0.00 3/100 42\n", sensors.Values{"load1": 1.0, "load5": 2.5, "load15": 0.0}, ""},
		{"loadavg short", parseLoadavg, "1.00 2.50\n", nil, "f line 1: want three load averages"},
		{"loadavg word", parseLoadavg, "1.00 x 0.00 3/100 42\n", nil, "f line 1: load5"},
		{"loadavg empty", parseLoadavg, "", nil, "f line 1"},
		{"uptime", parseUptime, "10.5 20.1\n", sensors.Values{"uptime_s": 10.5}, ""},
		{"uptime empty", parseUptime, "\n", nil, "f line 1"},
		{"uptime word", parseUptime, "up 20.1\n", nil, "f line 1"},
		{"meminfo", parseMeminfo, "MemTotal: 1000 kB\nMemAvailable: 250 kB\n", sensors.Values{"mem_used_pct": 75.0, "mem_available_mb": 0.24}, ""},
		{"meminfo old kernel", parseMeminfo, "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 100 kB\n", sensors.Values{"mem_used_pct": 75.0, "mem_available_mb": 0.24}, ""},
		{"meminfo no unit", parseMeminfo, "MemTotal: 1000 kB\nHugePages_Total: 0\nMemAvailable: 1000 kB\n", sensors.Values{"mem_used_pct": 0.0, "mem_available_mb": 0.98}, ""},
		{"meminfo no colon", parseMeminfo, "MemTotal: 1000 kB\nMemFree 5 kB\n", nil, "f line 2"},
		{"meminfo bad number", parseMeminfo, "MemTotal: lots kB\n", nil, "f line 1: MemTotal"},
		{"meminfo bad unit", parseMeminfo, "MemTotal: 1000 MB\n", nil, "f line 1"},
		{"meminfo no total", parseMeminfo, "MemFree: 1000 kB\n", nil, "f: no MemTotal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := sensors.Values{}
			err := tc.parse("f", []byte(tc.in), got)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("got %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func FuzzParseMeminfo(f *testing.F) {
	for _, p := range []string{"testdata/board/proc/meminfo", "testdata/malformed/proc/meminfo"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("MemTotal: 1000 kB\nMemAvailable: 5000 kB\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v := sensors.Values{}
		if err := parseMeminfo("f", b, v); err != nil {
			return
		}
		if p := v["mem_used_pct"].(float64); p < 0 || p > 100 {
			t.Errorf("mem_used_pct = %v, outside 0..100", p)
		}
	})
}
