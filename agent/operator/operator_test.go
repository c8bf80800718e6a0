package operator

import (
	"testing"
	"time"

	"github.com/edgeagent/agent/agent/fleet"
)

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"edge/+/status", "edge/dev1/status", true},
		{"edge/+/status", "edge/dev1/status/x", false},
		{"edge/+/telemetry/+", "edge/dev1/telemetry/sim1", true},
		{"edge/#", "edge/a/b/c", true},
		{"edge/dev1/reply/ab", "edge/dev1/reply/ab", true},
		{"edge/dev1/reply/ab", "edge/dev1/reply/ac", false},
		{"edge/+/fleet", "edge/fleet", false},
	} {
		if got := match(c.filter, c.topic); got != c.want {
			t.Errorf("match(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}

// TestMerge: a master's summary adds last-seen and last-error to the
// statuses, and devices seen only in telemetry.
func TestMerge(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	st := fleet.Summary{Devices: []fleet.Device{{ID: "dev1", State: "online", LastSeen: t0}}}
	sums := []fleet.Summary{{Devices: []fleet.Device{
		{ID: "dev1", LastSeen: t0.Add(time.Minute), LastError: "sht1: no ACK"},
		{ID: "dev7", State: "unknown", LastSeen: t0},
	}}}
	got := merge(st, sums)
	if len(got) != 2 || !got[0].LastSeen.Equal(t0.Add(time.Minute)) || got[0].LastError != "sht1: no ACK" || got[1].ID != "dev7" {
		t.Errorf("merge = %+v", got)
	}
}
