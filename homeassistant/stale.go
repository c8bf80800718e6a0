package homeassistant

import "strings"

// ConfigFilter is the MQTT topic filter matching every config this device
// published, e.g. "homeassistant/+/dev1/+/config". Subscribing to it returns
// the retained configs of earlier runs, for Stale.
func ConfigFilter(dev Device, t Topics) string {
	return prefixOf(t) + "/+/" + sanitise(dev.ID) + "/+/config"
}

// Stale returns removal messages (empty payload) for config topics that
// exist on the broker (retained, found by subscribing to ConfigFilter) but
// are not in current.
//
// The device is recognised from current's topics: an existing topic is
// removed only if it matches the config filter of a device in current, so a
// foreign topic (another device's, or anything that is not a config) is
// never touched. With nothing current there is no device to recognise and
// Stale returns nothing; use StaleFor to remove everything.
func Stale(existing []string, current []Message) []Message {
	var filters []string
	seen := map[string]bool{}
	for _, m := range current {
		f, ok := filterOf(m.Topic)
		if ok && !seen[f] {
			seen[f] = true
			filters = append(filters, f)
		}
	}
	return stale(filters, existing, current)
}

// StaleFor is Stale for a device named explicitly: it works with no current
// configs too, so StaleFor(dev, t, existing, nil) removes every entity the
// device published (discovery switched off, or nothing left to show).
func StaleFor(dev Device, t Topics, existing []string, current []Message) []Message {
	return stale([]string{ConfigFilter(dev, t)}, existing, current)
}

// stale returns, in the order of existing and once each, removals for the
// existing topics that match one of filters and are not current.
func stale(filters, existing []string, current []Message) []Message {
	keep := make(map[string]bool, len(current))
	for _, m := range current {
		if len(m.Payload) > 0 {
			keep[m.Topic] = true
		}
	}
	var out []Message
	for _, topic := range existing {
		if keep[topic] || !matchesAny(filters, topic) {
			continue
		}
		keep[topic] = true // once each
		out = append(out, Message{Topic: topic})
	}
	return out
}

// filterOf is the ConfigFilter of the device that published a config topic.
func filterOf(topic string) (string, bool) {
	l := strings.Split(topic, "/")
	n := len(l)
	if n < 5 || l[n-1] != "config" {
		return "", false
	}
	// The prefix may itself have levels; component, node and object do not.
	prefix := strings.Join(l[:n-4], "/")
	return prefix + "/+/" + l[n-3] + "/+/config", true
}

func matchesAny(filters []string, topic string) bool {
	for _, f := range filters {
		if match(f, topic) {
			return true
		}
	}
	return false
}

// match reports whether topic matches the MQTT topic filter f ("+" one
// level, "#" the rest). A wildcard does not match an empty level here: no
// config topic has one, and an empty level would mean a malformed topic.
func match(f, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(f, "+") || strings.HasPrefix(f, "#")) {
		return false // as brokers do: a leading wildcard never matches $SYS and the like
	}
	fl, tl := strings.Split(f, "/"), strings.Split(topic, "/")
	for i, p := range fl {
		if p == "#" {
			return true
		}
		if i >= len(tl) {
			return false
		}
		if p == "+" {
			if tl[i] == "" {
				return false
			}
			continue
		}
		if p != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}
