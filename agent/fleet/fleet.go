// Package fleet is the master's view of the fleet, built from what the
// devices publish: their retained status (online/offline, version, role,
// certificate expiry, health) and their telemetry (last seen, last error).
//
// The Tracker is fed raw MQTT messages from paho's receive callback, so
// Observe never blocks and never fails: a message that is not a fleet topic
// is left to others, a malformed one is counted and dropped, and memory is
// bounded (MaxDevices records of bounded size), so a flood of retained
// statuses or a misbehaving device cannot take the master down.
//
//	t := fleet.NewTracker("edge", fleet.MaxDevices)
//	handled := t.Observe(topic, payload, time.Now()) // in the receive callback
//	sum := t.Snapshot(time.Now())                  // for the retained summary and the CLI
package fleet

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Limits that bound the tracker's memory.
const (
	MaxDevices    = 20000   // devices tracked; more are counted as ignored
	MaxStatusSize = 4 << 10 // a larger status payload is malformed
	maxText       = 200     // version, role and error strings are cut to this
)

// Device is what the master knows of one device.
type Device struct {
	ID          string    `json:"id"`
	State       string    `json:"state"` // "online", "offline", or "unknown" (telemetry seen, no status yet)
	LastSeen    time.Time `json:"last_seen"`
	Version     string    `json:"version,omitempty"`
	Role        string    `json:"role,omitempty"`
	CertExpires time.Time `json:"cert_expires,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	QueueDepth  *int64    `json:"queue_depth,omitempty"` // from the status, when the device reports it
}

// Summary is the fleet at one time: the payload of the master's retained
// <prefix>/<master>/fleet topic.
type Summary struct {
	TS        time.Time `json:"ts"`
	Master    string    `json:"master,omitempty"`
	Online    int       `json:"online"`
	Offline   int       `json:"offline"`
	Malformed uint64    `json:"malformed"` // status or telemetry messages that could not be read
	Ignored   uint64    `json:"ignored"`   // devices beyond MaxDevices
	Devices   []Device  `json:"devices"`
}

// Tracker keeps the fleet's state. It is safe for concurrent use.
type Tracker struct {
	prefix string
	max    int

	mu        sync.Mutex
	devices   map[string]*Device
	malformed uint64
	ignored   uint64
	version   uint64 // bumped when a device appears, goes, or changes state, version, role, expiry or error
	seen      uint64 // bumped when only a last-seen time moved
}

// NewTracker tracks the devices under prefix, at most max of them (0 is
// MaxDevices).
func NewTracker(prefix string, max int) *Tracker {
	if max <= 0 {
		max = MaxDevices
	}
	return &Tracker{prefix: prefix, max: max, devices: map[string]*Device{}}
}

// Topics are the subscriptions that feed the tracker.
func (t *Tracker) Topics() (status, telemetry string) {
	return t.prefix + "/+/status", t.prefix + "/+/telemetry/+"
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// statusMsg is the device's status payload (docs/wire.md), read leniently:
// unknown fields are other versions' business.
type statusMsg struct {
	State       string `json:"state"`
	Role        string `json:"role"`
	Version     string `json:"version"`
	TS          string `json:"ts"`
	CertExpires string `json:"cert_expires"`
	LastError   string `json:"last_error"`
	QueueDepth  *int64 `json:"queue_depth"`
}

// Observe takes one message and reports whether it was a fleet topic
// (status or telemetry under the prefix), whatever its payload.
func (t *Tracker) Observe(topic string, payload []byte, now time.Time) bool {
	rest, ok := strings.CutPrefix(topic, t.prefix+"/")
	if !ok {
		return false
	}
	id, kind, ok := strings.Cut(rest, "/")
	if !ok {
		return false
	}
	var sensor string
	switch {
	case kind == "status":
	case strings.HasPrefix(kind, "telemetry/"):
		sensor = strings.TrimPrefix(kind, "telemetry/")
		if sensor == "" || strings.Contains(sensor, "/") {
			return false
		}
	default:
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !idRE.MatchString(id) {
		t.bad()
		return true
	}
	if kind == "status" {
		t.status(id, payload, now)
		return true
	}
	t.telemetry(id, sensor, payload, now)
	return true
}

func (t *Tracker) device(id string) *Device {
	d := t.devices[id]
	if d == nil {
		if len(t.devices) >= t.max {
			t.ignored++
			return nil
		}
		d = &Device{ID: id, State: "unknown"}
		t.devices[id] = d
	}
	return d
}

func (t *Tracker) status(id string, payload []byte, now time.Time) {
	if len(payload) == 0 { // a retained status cleared: the device is gone
		if _, ok := t.devices[id]; ok {
			delete(t.devices, id)
			t.version++
		}
		return
	}
	var m statusMsg
	if len(payload) > MaxStatusSize || json.Unmarshal(payload, &m) != nil || (m.State != "online" && m.State != "offline") {
		t.bad()
		return
	}
	d := t.device(id)
	if d == nil {
		return
	}
	d.State = m.State
	d.Version, d.Role = text(m.Version), text(m.Role)
	d.QueueDepth = m.QueueDepth
	if m.LastError != "" {
		d.LastError = text(m.LastError)
	}
	seen := now
	if ts, err := time.Parse(time.RFC3339, m.TS); err == nil && ts.Before(now) {
		seen = ts // a retained status read at start is as old as it says
	}
	if seen.After(d.LastSeen) {
		d.LastSeen = seen
	}
	d.CertExpires = time.Time{}
	if ce, err := time.Parse(time.RFC3339, m.CertExpires); err == nil {
		d.CertExpires = ce
	}
	t.version++
}

func (t *Tracker) telemetry(id, sensor string, payload []byte, now time.Time) {
	n := len(t.devices)
	d := t.device(id)
	if d == nil {
		return
	}
	if len(t.devices) != n {
		t.version++ // a new device, seen in telemetry first
	}
	d.LastSeen = now
	t.seen++
	// Most readings carry values; only an error reading is parsed.
	if bytes.Contains(payload, []byte(`"error"`)) {
		var m struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(payload, &m); err != nil {
			t.bad()
		} else if e := text(sensor + ": " + m.Error); m.Error != "" && e != d.LastError {
			d.LastError = e
			t.version++
		}
	}
}

// bad counts a malformed message; the count is part of the view.
func (t *Tracker) bad() {
	t.malformed++
	t.version++
}

// text makes a device-supplied string safe to keep and print: valid UTF-8
// without control characters, at most maxText bytes.
func text(s string) string {
	s = strings.ToValidUTF8(s, "�")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	for len(s) > maxText {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// Version changes whenever the fleet view changes other than by a
// last-seen time; Seen changes with those. A publisher sends changes soon
// and mere last-seen updates now and then.
func (t *Tracker) Version() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.version
}

// Seen changes whenever a device's last-seen time moves.
func (t *Tracker) Seen() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seen
}

// Snapshot returns the fleet, devices sorted by id.
func (t *Tracker) Snapshot(now time.Time) Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Summary{TS: now.UTC(), Malformed: t.malformed, Ignored: t.ignored, Devices: make([]Device, 0, len(t.devices))}
	for _, d := range t.devices {
		s.Devices = append(s.Devices, *d)
		switch d.State {
		case "online":
			s.Online++
		case "offline":
			s.Offline++
		}
	}
	slices.SortFunc(s.Devices, func(a, b Device) int { return strings.Compare(a.ID, b.ID) })
	return s
}
