package netlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as the tools the hosts run (this machine has no
// ping, nc or socat): NETLAB_HELPER picks one, and the process exits before
// any test runs. The helpers run inside a host's namespace, via h.Command.
const helperEnv = "NETLAB_HELPER"

func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		if err := runHelper(h, os.Getenv("NETLAB_ARG")); err != nil {
			fmt.Fprintf(os.Stderr, "helper %s: %v\n", h, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runHelper(name, arg string) error {
	switch name {
	case "serve":
		return serve(arg)
	case "dial":
		return dial(arg)
	case "mdns":
		return browseMDNS(arg)
	}
	return fmt.Errorf("unknown helper")
}

// helper returns a command that runs helper name with arg inside h.
func helper(t *testing.T, ctx context.Context, h *Host, name, arg string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := h.Command(ctx, exe)
	// Under -race a process that exits 0 sleeps 1 s by default (atexit_sleep_ms).
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), helperEnv+"="+name, "NETLAB_ARG="+arg, "GORACE="+gorace)
	return cmd
}

// serve answers every TCP connection on addr with "hello from <namespace>".
func serve(addr string) error {
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		return err
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		// The namespace name, not the UTS host name (shared with the machine).
		fmt.Fprintf(c, "hello from %s via %s\n", os.Getenv("NETLAB_NS"), c.LocalAddr())
		c.Close()
	}
}

// dial prints the first line the server at addr sends.
func dial(addr string) error {
	c, err := net.DialTimeout("tcp4", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	fmt.Print(line)
	return nil
}

func dialFrom(t *testing.T, h *Host, addr string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := helper(t, ctx, h, "dial", addr).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func TestHostsTalk(t *testing.T) {
	lab := New(t)
	a := lab.AddHost("a", netip.MustParsePrefix("192.0.2.10/24"))
	b := lab.AddHost("b", netip.MustParsePrefix("192.0.2.11/24"))

	for _, h := range []*Host{a, b} {
		if len(h.Iface) > 15 {
			t.Errorf("host %s: interface name %q longer than 15", h.Name, h.Iface)
		}
		// Hosts reach the bridge and nothing else.
		if out, err := ipOutput("-n", h.NS, "route", "show", "default"); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("host %s: default route %q (%v), want none", h.Name, out, err)
		}
		out, err := ipOutput("-n", h.NS, "route", "show", "224.0.0.0/4")
		if err != nil || !strings.Contains(out, "dev "+h.Iface) {
			t.Errorf("host %s: multicast route %q (%v), want one via %s", h.Name, out, err, h.Iface)
		}
	}

	cmd := helper(t, context.Background(), a, "serve", ":7000")
	cmd.Env = append(cmd.Env, "NETLAB_NS="+a.NS)
	srv := a.StartCmd(t, cmd)
	if _, err := srv.WaitOutput("listening on", 10*time.Second); err != nil {
		t.Fatal(err)
	}

	t.Run("b reaches a", func(t *testing.T) {
		got, err := dialFrom(t, b, "192.0.2.10:7000")
		if want := "hello from " + a.NS + " via 192.0.2.10:7000"; err != nil || got != want {
			t.Fatalf("dial from b: got %q (%v), want %q", got, err, want)
		}
	})

	t.Run("address moves", func(t *testing.T) {
		moved := netip.MustParsePrefix("192.0.2.20/24")
		if err := a.AddAddr(moved); err != nil {
			t.Fatal(err)
		}
		got, err := dialFrom(t, b, "192.0.2.20:7000")
		if want := "hello from " + a.NS + " via 192.0.2.20:7000"; err != nil || got != want {
			t.Fatalf("dial new address: got %q (%v), want %q", got, err, want)
		}
		if err := a.DelAddr(moved); err != nil {
			t.Fatal(err)
		}
		if got, err := dialFrom(t, b, "192.0.2.20:7000"); err == nil {
			t.Fatalf("dial removed address: got %q, want an error", got)
		}
	})

	t.Run("process exit", func(t *testing.T) {
		p := b.Start(t, "sh", "-c", "echo one; echo two >&2; exit 3")
		line, err := p.WaitOutput("tw", 5*time.Second)
		if err != nil || line != "two" {
			t.Fatalf("WaitOutput: got %q (%v), want %q", line, err, "two")
		}
		var exit *exec.ExitError
		if err := p.Wait(); !errors.As(err, &exit) || exit.ExitCode() != 3 {
			t.Fatalf("Wait: got %v, want exit status 3", err)
		}
		if _, err := p.WaitOutput("never", 5*time.Second); err == nil || !strings.Contains(err.Error(), "exited") {
			t.Fatalf("WaitOutput after exit: got %v, want an error saying it exited", err)
		}
	})
}

func TestAddHostErrors(t *testing.T) {
	for _, name := range []string{"", "-a", "a b", "a/b", strings.Repeat("x", 33)} {
		if err := validName(name); err == nil {
			t.Errorf("validName(%q) = nil, want an error", name)
		}
	}
	for _, name := range []string{"a", "broker-1", strings.Repeat("x", 32)} {
		if err := validName(name); err != nil {
			t.Errorf("validName(%q) = %v, want nil", name, err)
		}
	}
}

func TestAvahiService(t *testing.T) {
	got := AvahiService("MQTT <on> %h", "_secure-mqtt._tcp", 8883, "host=broker.test", "a&b=1")
	for _, want := range []string{
		"<name>MQTT &lt;on&gt; %h</name>",
		"<type>_secure-mqtt._tcp</type>",
		"<port>8883</port>",
		"<txt-record>host=broker.test</txt-record>",
		"<txt-record>a&amp;b=1</txt-record>",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("AvahiService: missing %q in\n%s", want, got)
		}
	}
}

// TestAvahiFoundAcrossNamespaces proves the lab carries mDNS: Avahi
// advertises in host a, and a hand-built query from host b gets its answer.
func TestAvahiFoundAcrossNamespaces(t *testing.T) {
	_, rootAvahiErr := os.Stat("/run/avahi-daemon")
	lab := New(t)
	a := lab.AddHost("a", netip.MustParsePrefix("192.0.2.10/24"))
	b := lab.AddHost("b", netip.MustParsePrefix("192.0.2.11/24"))
	a.StartAvahi(t, map[string]string{
		"mqtt.service": AvahiService("MQTT on broker", "_secure-mqtt._tcp", 8883, "host=broker.test"),
	})
	if _, err := os.Stat("/run/avahi-daemon"); err == nil && rootAvahiErr != nil {
		t.Errorf("StartAvahi created /run/avahi-daemon in the machine's /run")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := helper(t, ctx, b, "mdns", "_secure-mqtt._tcp.local").CombinedOutput()
	t.Logf("mDNS browse from b:\n%s", out)
	if err != nil {
		t.Fatalf("browse from b: %v", err)
	}
	for _, want := range []string{
		"FROM 192.0.2.10:5353",
		"PTR _secure-mqtt._tcp.local. -> MQTT on broker._secure-mqtt._tcp.local.",
		"SRV MQTT on broker._secure-mqtt._tcp.local. port=8883 target=" + a.NS + ".local.",
		"TXT MQTT on broker._secure-mqtt._tcp.local. host=broker.test",
		"A " + a.NS + ".local. 192.0.2.10",
	} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("browse from b: no line %q", want)
		}
	}
}

// TestCleanup: a torn-down lab leaves no namespace or process behind, and
// the root namespace's links and routes are the same before, during and
// after.
func TestCleanup(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	root := func() string {
		var b strings.Builder
		for _, args := range [][]string{{"-o", "link"}, {"-o", "addr"}, {"route"}, {"-6", "route"}, {"-o", "link", "show", "type", "veth"}} {
			out, err := ipOutput(args...)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "ip %s:\n%s", strings.Join(args, " "), out)
		}
		return b.String()
	}
	before := root()
	nsBefore := namespaces(t)

	var prefix string
	strayDone := make(chan error, 1)
	t.Run("lab", func(t *testing.T) {
		lab := New(t)
		prefix = lab.prefix
		a := lab.AddHost("a", netip.MustParsePrefix("192.0.2.10/24"))
		lab.AddHost("b", netip.MustParsePrefix("192.0.2.11/24"))
		a.Start(t, "sleep", "600")
		// Started with Command and never waited for: the lab must kill it.
		stray := a.Command(context.Background(), "sleep", "601")
		if err := stray.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { strayDone <- stray.Wait() }()
		if during := root(); during != before {
			t.Errorf("root namespace changed while the lab is up:\nbefore:\n%s\nduring:\n%s", before, during)
		}
		var mine []string
		for _, ns := range namespaces(t) {
			if strings.HasPrefix(ns, prefix) {
				mine = append(mine, ns)
			}
		}
		slices.Sort(mine)
		if want := []string{prefix + "-a", prefix + "-b", prefix + "-hub"}; !slices.Equal(mine, want) {
			t.Errorf("lab namespaces: got %v, want %v", mine, want)
		}
	})

	if after := root(); after != before {
		t.Errorf("root namespace changed by the lab:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	nsAfter := namespaces(t)
	for _, ns := range nsAfter {
		if strings.HasPrefix(ns, prefix) {
			t.Errorf("namespace %s left behind", ns)
		}
	}
	for _, ns := range nsBefore {
		if !slices.Contains(nsAfter, ns) {
			t.Errorf("namespace %s (not the lab's) disappeared", ns)
		}
	}
	select {
	case err := <-strayDone:
		t.Logf("process started with Command ended: %v", err)
	case <-time.After(5 * time.Second):
		t.Errorf("process started with Command still running after the lab's cleanup")
	}
}

func namespaces(t *testing.T) []string {
	t.Helper()
	out, err := ipOutput("netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}
