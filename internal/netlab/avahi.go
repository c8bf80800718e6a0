package netlab

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// avahiReady bounds how long StartAvahi waits for startup and for each
// service to be established (probing takes under a second).
const avahiReady = 15 * time.Second

// avahiDaemon finds avahi-daemon, which lives in /usr/sbin, outside some PATHs.
func avahiDaemon() (string, error) {
	if p, err := exec.LookPath("avahi-daemon"); err == nil {
		return p, nil
	}
	const p = "/usr/sbin/avahi-daemon"
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("avahi-daemon not installed (apt-get install avahi-daemon): %w", err)
	}
	return p, nil
}

// StartAvahi runs a real avahi-daemon inside h's namespace, without D-Bus,
// publishing the given static service files (file name, ending in
// ".service", to XML contents; see AvahiService). Its host name is h.NS
// (unique to the lab), so run one per host. It returns once Avahi reports
// startup complete and every service established (announced on the
// network), and calls t.Fatal if that does not happen in time, or t.Skip if
// avahi-daemon, unshare or mount are not installed. The daemon is stopped
// (SIGTERM, so it says goodbye) when t ends.
//
// The daemon runs in a private mount namespace where the services directory
// and /run are bind mounts of directories under t.TempDir(): its pid file
// and socket never land in the machine's /run, and no other Avahi sees them.
func (h *Host) StartAvahi(t testing.TB, services map[string]string) *Proc {
	t.Helper()
	daemon, err := avahiDaemon()
	if err != nil {
		t.Skip("netlab: ", err)
	}
	for _, tool := range []string{"unshare", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("netlab: %s not found: %v", tool, err)
		}
	}

	dir := t.TempDir()
	svcDir := filepath.Join(dir, "services")
	runDir := filepath.Join(dir, "run")
	for _, d := range []string{svcDir, runDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatalf("netlab: avahi on %s: %v", h.Name, err)
		}
	}
	names := make([]string, 0, len(services))
	for name, body := range services {
		if name != filepath.Base(name) || !strings.HasSuffix(name, ".service") {
			t.Fatalf("netlab: avahi on %s: service file name %q: want a base name ending in .service (Avahi ignores others)", h.Name, name)
		}
		if err := os.WriteFile(filepath.Join(svcDir, name), []byte(body), 0o644); err != nil {
			t.Fatalf("netlab: avahi on %s: %v", h.Name, err)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	conf := filepath.Join(dir, "avahi-daemon.conf")
	if err := os.WriteFile(conf, []byte(avahiConf(h.NS, h.Iface, ipv6())), 0o644); err != nil {
		t.Fatalf("netlab: avahi on %s: %v", h.Name, err)
	}

	// /run/avahi-daemon need not exist on the machine (Avahi would create it
	// in the real /run), so the whole /run is replaced in the daemon's mount
	// namespace. unshare makes that namespace private: nothing propagates out.
	// Paths go in as positional parameters, never spliced into the script.
	const script = `mount --bind "$1" /etc/avahi/services && mount --bind "$2" /run && exec "$3" -f "$4" --no-drop-root --no-chroot`
	cmd := h.Command(context.Background(), "unshare", "-m", "sh", "-c", script, "sh", svcDir, runDir, daemon, conf)
	p := h.StartCmd(t, cmd)

	if _, err := p.WaitOutput("Server startup complete", avahiReady); err != nil {
		t.Fatalf("netlab: avahi on %s: %v", h.Name, err)
	}
	for _, name := range names {
		want := "(/etc/avahi/services/" + name + ") successfully established"
		if _, err := p.WaitOutput(want, avahiReady); err != nil {
			t.Fatalf("netlab: avahi on %s: %v", h.Name, err)
		}
	}
	return p
}

// avahiConf is a configuration for one daemon on one interface: mDNS only,
// no D-Bus, no wide area, nothing published but the static services and the
// host's address records.
func avahiConf(hostName, iface string, v6 bool) string {
	yn := map[bool]string{true: "yes", false: "no"}
	return fmt.Sprintf(`[server]
host-name=%s
domain-name=local
use-ipv4=yes
use-ipv6=%s
allow-interfaces=%s
enable-dbus=no
ratelimit-interval-usec=1000000
ratelimit-burst=1000

[wide-area]
enable-wide-area=no

[publish]
publish-hinfo=no
publish-workstation=no
publish-addresses=yes

[reflector]
enable-reflector=no

[rlimits]
`, hostName, yn[v6], iface)
}

// AvahiService returns an Avahi static service file advertising instance as
// typ (e.g. "_secure-mqtt._tcp") on port, with the given TXT records
// ("key=value"). Avahi replaces "%h" in instance with its host name.
func AvahiService(instance, typ string, port int, txt ...string) string {
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\" standalone='no'?>\n")
	b.WriteString("<!DOCTYPE service-group SYSTEM \"avahi-service.dtd\">\n")
	b.WriteString("<service-group>\n  <name>")
	xmlEscape(&b, instance)
	b.WriteString("</name>\n  <service>\n    <type>")
	xmlEscape(&b, typ)
	fmt.Fprintf(&b, "</type>\n    <port>%d</port>\n", port)
	for _, r := range txt {
		b.WriteString("    <txt-record>")
		xmlEscape(&b, r)
		b.WriteString("</txt-record>\n")
	}
	b.WriteString("  </service>\n</service-group>\n")
	return b.String()
}

func xmlEscape(b *strings.Builder, s string) {
	_ = xml.EscapeText(b, []byte(s)) // a strings.Builder never fails
}
