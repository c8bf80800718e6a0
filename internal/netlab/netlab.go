// Package netlab builds throwaway networks out of Linux network namespaces so
// that tests can run mDNS (and anything else that multicasts or listens on
// real interfaces) without a single packet reaching the machine's own
// interfaces.
//
// A lab is one hub namespace holding a Linux bridge, plus one namespace per
// host, each joined to the bridge by a veth pair:
//
//	host "broker" (ns nlXXXXXX-broker)      host "agent" (ns nlXXXXXX-agent)
//	  nlXXXXXXv0 192.0.2.10/24                nlXXXXXXv1 192.0.2.11/24
//	         |                                        |
//	  nlXXXXXXh0 ---- nlXXXXXXbr (bridge) ---- nlXXXXXXh1      (ns nlXXXXXX-hub)
//
// Every link is created directly inside the lab's namespaces (the veth peer is
// placed with `ip link add ... peer ... netns`), so the root namespace's
// interfaces and routes are never touched. Hosts get no default route: they
// reach each other and nothing else. Use 192.0.2.0/24 (TEST-NET-1) addresses.
// Each host has the multicast route 224.0.0.0/4 (and ff00::/8) on its veth,
// and IPv6 duplicate address detection is off so link-local addresses are
// usable at once.
//
// Typical use, with a real Avahi advertising a broker and the code under test
// run inside another host:
//
//	func TestDiscovery(t *testing.T) {
//		lab := netlab.New(t) // skips unless root with `ip netns`
//		broker := lab.AddHost("broker", netip.MustParsePrefix("192.0.2.10/24"))
//		agent := lab.AddHost("agent", netip.MustParsePrefix("192.0.2.11/24"))
//		broker.StartAvahi(t, map[string]string{
//			"mqtt.service": netlab.AvahiService("MQTT on broker", "_secure-mqtt._tcp", 8883, "host=broker.test"),
//		})
//		p := agent.Start(t, agentBinary, "-discover")
//		if _, err := p.WaitOutput("found broker", 10*time.Second); err != nil {
//			t.Fatal(err)
//		}
//	}
//
// The test process itself stays in the root namespace; to run Go code inside
// a host, re-execute the test binary there (h.Command(ctx, os.Args[0],
// "-test.run=^TestHelper$") with an environment variable selecting the
// helper), as this package's own tests do.
//
// When the test ends, every process started through the lab is killed (any
// process still inside a lab namespace too) and every namespace is deleted,
// which destroys the veths and the bridge with them.
package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ipTimeout bounds every `ip` invocation: they take milliseconds, and a hung
// one must fail the test instead of stalling it.
const ipTimeout = 10 * time.Second

// Available returns nil, or why a lab cannot be built here, for t.Skip. The
// answer is measured once per process by creating and deleting a scratch
// namespace with a bridge and a veth pair in it.
func Available() error { return availability() }

var availability = sync.OnceValue(probe)

func probe() error {
	if os.Geteuid() != 0 {
		return errors.New("netlab: needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("netlab: iproute2 `ip` not found: %w", err)
	}
	ns := "nlprobe" + randomHex(4)
	if err := ipCmd("netns", "add", ns); err != nil {
		return fmt.Errorf("netlab: cannot create a network namespace: %w", err)
	}
	defer ipCmd("netns", "del", ns)
	if err := ipCmd("-n", ns, "link", "add", "nlprobebr", "type", "bridge"); err != nil {
		return fmt.Errorf("netlab: cannot create a bridge: %w", err)
	}
	if err := ipCmd("-n", ns, "link", "add", "nlprobe0", "type", "veth", "peer", "name", "nlprobe1"); err != nil {
		return fmt.Errorf("netlab: cannot create a veth pair: %w", err)
	}
	return nil
}

// ipv6 reports whether the kernel has IPv6; without it the v6 steps are left out.
var ipv6 = sync.OnceValue(func() bool {
	_, err := os.Stat("/proc/sys/net/ipv6")
	return err == nil
})

// Lab is a hub namespace holding a Linux bridge, and hosts (namespaces) each
// joined to the bridge by a veth pair. Its names share a random prefix, so
// labs of concurrent tests and packages never collide.
type Lab struct {
	t      testing.TB
	prefix string // "nl" + 6 hex digits
	hub    string // hub namespace
	bridge string // bridge inside hub

	mu         sync.Mutex
	namespaces []string // created, in order; deleted at cleanup
	hosts      map[string]*Host
	procs      []*Proc
	next       int // index for the next host's interface names
}

// New builds an empty lab (the hub and its bridge). It calls t.Skip when
// Available reports a reason, and t.Fatal when the lab cannot be built.
// t.Cleanup kills every process started through the lab and deletes every
// namespace, waiting a bounded time.
func New(t testing.TB) *Lab {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err)
	}
	prefix := "nl" + randomHex(3)
	l := &Lab{
		t:      t,
		prefix: prefix,
		hub:    prefix + "-hub",
		bridge: prefix + "br",
		hosts:  map[string]*Host{},
	}
	t.Cleanup(l.close)
	if err := l.addNS(l.hub); err != nil {
		t.Fatal(err)
	}
	steps := [][]string{
		{"-n", l.hub, "link", "set", "lo", "up"},
		// Snooping off: with no querier on the bridge, the flood of every
		// group to every port must not depend on IGMP timing.
		{"-n", l.hub, "link", "add", l.bridge, "type", "bridge",
			"stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"},
		{"-n", l.hub, "link", "set", l.bridge, "up"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			t.Fatalf("netlab: build hub: %v", err)
		}
	}
	return l
}

// Host is one namespace of a lab, with a veth to the hub's bridge.
type Host struct {
	Name  string
	NS    string     // the namespace name, for `ip netns exec`
	Iface string     // the host's veth inside its namespace
	Addr  netip.Addr // first address

	lab *Lab
}

// AddHost creates a host namespace joined to the bridge, with addr on its
// veth (e.g. netip.MustParsePrefix("192.0.2.10/24")), lo and the veth up, and
// the multicast routes in place. Names are letters, digits and '-', at most
// 32 characters, unique in the lab. Failures call t.Fatal on the test that
// made the lab, so call AddHost from that test's goroutine.
func (l *Lab) AddHost(name string, addr netip.Prefix) *Host {
	l.t.Helper()
	if err := validName(name); err != nil {
		l.t.Fatal(err)
	}
	if !addr.IsValid() {
		l.t.Fatalf("netlab: host %s: invalid address prefix %v", name, addr)
	}
	l.mu.Lock()
	if _, dup := l.hosts[name]; dup {
		l.mu.Unlock()
		l.t.Fatalf("netlab: host %q already in the lab", name)
	}
	idx := l.next
	l.next++
	h := &Host{
		Name:  name,
		NS:    l.prefix + "-" + name,
		Iface: l.prefix + "v" + strconv.Itoa(idx),
		Addr:  addr.Addr(),
		lab:   l,
	}
	l.hosts[name] = h
	l.mu.Unlock()

	if err := l.addNS(h.NS); err != nil {
		l.t.Fatal(err)
	}
	if err := h.build(l.prefix+"h"+strconv.Itoa(idx), addr); err != nil {
		l.t.Fatalf("netlab: host %s: %v", name, err)
	}
	return h
}

func (h *Host) build(hubSide string, addr netip.Prefix) error {
	l := h.lab
	if ipv6() {
		// Before the veth exists, so it inherits "default": its link-local
		// address is then never tentative.
		if err := h.disableDAD(); err != nil {
			return err
		}
	}
	steps := [][]string{
		{"-n", l.hub, "link", "add", hubSide, "type", "veth", "peer", "name", h.Iface, "netns", h.NS},
		{"-n", l.hub, "link", "set", hubSide, "master", l.bridge},
		{"-n", l.hub, "link", "set", hubSide, "up"},
		{"-n", h.NS, "link", "set", "lo", "up"},
		{"-n", h.NS, "link", "set", h.Iface, "up"},
		addrArgs("add", h.NS, h.Iface, addr),
		{"-n", h.NS, "route", "add", "224.0.0.0/4", "dev", h.Iface},
	}
	if ipv6() {
		steps = append(steps, []string{"-n", h.NS, "-6", "route", "add", "ff00::/8", "dev", h.Iface})
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return err
		}
	}
	return nil
}

// disableDAD turns off duplicate address detection in h's namespace. The
// sysctl files under /proc/sys/net belong to the namespace of the process
// that opens them, hence the shell inside the namespace.
func (h *Host) disableDAD() error {
	const script = `for f in /proc/sys/net/ipv6/conf/all/accept_dad /proc/sys/net/ipv6/conf/default/accept_dad; do
	echo 0 >"$f" || exit 1
done`
	ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
	defer cancel()
	if out, err := h.Command(ctx, "sh", "-c", script).CombinedOutput(); err != nil {
		return fmt.Errorf("disable IPv6 DAD in %s: %w: %s", h.NS, err, bytes.TrimSpace(out))
	}
	return nil
}

// Command returns a command that runs name inside h's namespace (through
// `ip netns exec`). The caller starts it; if it is still running when the
// lab is torn down, it is killed then.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// Start runs name inside h's namespace with its combined output captured.
// The process is killed when t ends (and at the lab's cleanup at the latest).
func (h *Host) Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	return h.StartCmd(t, h.Command(context.Background(), name, args...))
}

// StartCmd starts cmd, made by h.Command and perhaps given an Env or Dir,
// like Start. cmd's Stdout, Stderr and SysProcAttr are set here.
func (h *Host) StartCmd(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	p, err := startProc(h.Name, cmd)
	if err != nil {
		t.Fatalf("netlab: host %s: %v", h.Name, err)
	}
	h.lab.mu.Lock()
	h.lab.procs = append(h.lab.procs, p)
	h.lab.mu.Unlock()
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("netlab: %v", err)
		}
		if t.Failed() {
			t.Logf("netlab: output of %s:\n%s", p, p.Output())
		}
	})
	return p
}

// AddAddr adds p to h's veth, e.g. for "the broker moves to a new address".
func (h *Host) AddAddr(p netip.Prefix) error {
	if err := ipCmd(addrArgs("add", h.NS, h.Iface, p)...); err != nil {
		return fmt.Errorf("netlab: host %s: %w", h.Name, err)
	}
	return nil
}

// DelAddr removes p from h's veth.
func (h *Host) DelAddr(p netip.Prefix) error {
	if err := ipCmd(addrArgs("del", h.NS, h.Iface, p)...); err != nil {
		return fmt.Errorf("netlab: host %s: %w", h.Name, err)
	}
	return nil
}

func addrArgs(op, ns, iface string, p netip.Prefix) []string {
	args := []string{"-n", ns, "addr", op, p.String(), "dev", iface}
	if op == "add" && p.Addr().Is6() {
		args = append(args, "nodad")
	}
	return args
}

func (l *Lab) addNS(ns string) error {
	// Recorded first: a half-made namespace must still be deleted.
	l.mu.Lock()
	l.namespaces = append(l.namespaces, ns)
	l.mu.Unlock()
	if err := ipCmd("netns", "add", ns); err != nil {
		return fmt.Errorf("netlab: %w", err)
	}
	return nil
}

// close stops the lab's processes, kills anything else left in its
// namespaces, and deletes them, hosts before the hub.
func (l *Lab) close() {
	l.mu.Lock()
	procs := l.procs
	nss := l.namespaces
	l.mu.Unlock()

	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() {
			if err := p.Stop(); err != nil {
				l.t.Errorf("netlab: %v", err)
			}
		})
	}
	wg.Wait()

	for i := len(nss) - 1; i >= 0; i-- {
		ns := nss[i]
		if _, err := os.Stat("/run/netns/" + ns); errors.Is(err, os.ErrNotExist) {
			continue // never created
		}
		if err := killAll(ns, 5*time.Second); err != nil {
			l.t.Errorf("netlab: %v", err)
		}
		if err := ipCmd("netns", "del", ns); err != nil {
			l.t.Errorf("netlab: cleanup: %v", err)
		}
	}
}

// killAll SIGKILLs every process inside ns (those the tests started with
// Command and never waited for) until none is left or limit passes.
func killAll(ns string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		out, err := ipOutput("netns", "pids", ns)
		if err != nil {
			return err
		}
		pids := strings.Fields(out)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cleanup: processes %v still in namespace %s after %v", pids, ns, limit)
		}
		for _, s := range pids {
			if pid, err := strconv.Atoi(s); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond) // poll: a killed process has no exit event for a non-parent
	}
}

func ipCmd(args ...string) error {
	_, err := ipOutput(args...)
	return err
}

func ipOutput(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return string(out), nil
}

func validName(name string) error {
	if name == "" || len(name) > 32 || name[0] == '-' {
		return fmt.Errorf("netlab: host name %q: want 1 to 32 letters, digits or '-', not starting with '-'", name)
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-') {
			return fmt.Errorf("netlab: host name %q: want only letters, digits or '-'", name)
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails since Go 1.24
	return hex.EncodeToString(b)
}
