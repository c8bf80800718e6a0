package fleet

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

func TestObserve(t *testing.T) {
	tr := NewTracker("edge", 0)
	feed := []struct {
		topic, payload string
		handled        bool
	}{
		{"edge/dev1/status", `{"state":"online","role":"remote","version":"1.2.0","ts":"2026-11-23T07:59:00.000Z","cert_expires":"2027-02-21T07:17:19Z"}`, true},
		{"edge/dev2/status", `{"state":"offline","role":"remote","version":"1.1.0","ts":"2026-11-23T07:00:00.000Z"}`, true},
		{"edge/dev3/telemetry/sht1", `{"ts":"…","sensor":"sht1","seq":3,"error":"i2c: no ACK from 0x44"}`, true},
		{"edge/dev1/telemetry/sim1", `{"ts":"…","sensor":"sim1","seq":1,"values":{"t":1}}`, true},
		{"edge/dev1/cmd", `{}`, false},
		{"edge/dev1/state/relay1", `{}`, false},
		{"other/dev1/status", `{}`, false},
		{"edge/dev1/fleet", `{}`, false},
		{"edge/dev4/status", `not json`, true},             // malformed
		{"edge/dev4/status", `{"state":"sleeping"}`, true}, // malformed
		{"edge/dev4/status", `{"state":"online","x":` + strings.Repeat("1", MaxStatusSize) + `}`, true}, // too large
		{"edge/-bad/status", `{"state":"online"}`, true},                                                // not a device id
		{"edge/dev3/telemetry/sht1", `{"error":`, true},                                                 // malformed
	}
	for _, f := range feed {
		if got := tr.Observe(f.topic, []byte(f.payload), t0); got != f.handled {
			t.Errorf("Observe(%s) = %v, want %v", f.topic, got, f.handled)
		}
	}
	s := tr.Snapshot(t0)
	if s.Online != 1 || s.Offline != 1 || s.Malformed != 5 || len(s.Devices) != 3 {
		t.Fatalf("summary %+v; want 1 online, 1 offline, 5 malformed, 3 devices", s)
	}
	d1, d2, d3 := s.Devices[0], s.Devices[1], s.Devices[2]
	if d1.ID != "dev1" || d1.Version != "1.2.0" || !d1.LastSeen.Equal(t0) || d1.CertExpires.Format(time.DateOnly) != "2027-02-21" {
		t.Errorf("dev1 %+v", d1)
	}
	if d2.State != "offline" || !d2.LastSeen.Equal(time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)) {
		t.Errorf("dev2 %+v: last seen is the retained status's ts", d2)
	}
	if d3.State != "unknown" || d3.LastError != "sht1: i2c: no ACK from 0x44" {
		t.Errorf("dev3 %+v", d3)
	}

	// A cleared retained status removes the device.
	v := tr.Version()
	tr.Observe("edge/dev2/status", nil, t0)
	if s := tr.Snapshot(t0); len(s.Devices) != 2 || tr.Version() == v {
		t.Errorf("after clearing dev2: %d devices, version %d→%d", len(s.Devices), v, tr.Version())
	}
}

// TestBounded: ten thousand retained statuses and more fit in a bounded
// tracker; the excess is counted, and device strings are cut and cleaned.
func TestBounded(t *testing.T) {
	tr := NewTracker("edge", 10000)
	for i := range 10500 {
		tr.Observe(fmt.Sprintf("edge/d%05d/status", i), []byte(`{"state":"online","version":"`+strings.Repeat("v", 1000)+`\u0007"}`), t0)
	}
	s := tr.Snapshot(t0)
	if len(s.Devices) != 10000 || s.Ignored != 500 || s.Online != 10000 {
		t.Fatalf("%d devices, %d ignored, %d online; want 10000, 500, 10000", len(s.Devices), s.Ignored, s.Online)
	}
	if v := s.Devices[0].Version; len(v) != maxText || strings.ContainsRune(v, 7) {
		t.Errorf("version kept as %d bytes %q…", len(v), v[:10])
	}
}

func FuzzObserve(f *testing.F) {
	f.Add("edge/dev1/status", []byte(`{"state":"online","ts":"2026-11-23T07:59:00Z"}`))
	f.Add("edge/dev1/telemetry/s", []byte(`{"error":"x"}`))
	f.Add("edge//status", []byte(``))
	f.Add("edge/dev1/telemetry/", []byte(`{"error":1}`))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		tr := NewTracker("edge", 4)
		tr.Observe(topic, payload, t0)
		s := tr.Snapshot(t0)
		for _, d := range s.Devices {
			if len(d.LastError) > maxText || len(d.Version) > maxText {
				t.Fatalf("unbounded text in %+v", d)
			}
		}
	})
}
