package discovery

import (
	"net/netip"
	"slices"
	"testing"
)

func TestCandidates(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	svcs := []Service{
		{Instance: "zeta", Port: 8883, Addrs: []netip.Addr{a("192.0.2.30")}},
		{Instance: "spoof", Port: 8883, Addrs: []netip.Addr{a("192.0.2.66")}, TXT: []string{"host=evil.example"}},
		{Instance: "alpha", Port: 8883, Addrs: []netip.Addr{a("fe80::1"), a("2001:db8::1"), a("192.0.2.20"), a("192.0.2.10")}, TXT: []string{"host=broker.test"}},
		{Instance: "hub", Port: 1883, Addrs: []netip.Addr{a("192.0.2.40"), a("0.0.0.0"), a("224.0.0.251")}, TXT: []string{"HOST=Broker.Test."}},
		{Instance: "dup", Port: 8883, Addrs: []netip.Addr{a("192.0.2.30")}},
		{Instance: "badport", Port: 0, Addrs: []netip.Addr{a("192.0.2.50")}},
	}
	got, skipped := Candidates(svcs, "hub", "broker.test")
	var addrs []string
	for _, c := range got {
		addrs = append(addrs, c.Instance+"@"+c.Addr.String())
	}
	want := []string{"hub@192.0.2.40:1883", "alpha@192.0.2.10:8883", "alpha@192.0.2.20:8883", "alpha@[2001:db8::1]:8883", "dup@192.0.2.30:8883"}
	if !slices.Equal(addrs, want) {
		t.Errorf("candidates\n got %v\nwant %v", addrs, want)
	}
	if len(skipped) != 2 || skipped[0].Instance != "badport" || skipped[1].Instance != "spoof" {
		t.Errorf("skipped = %+v, want badport and spoof", skipped)
	}
	// Stable: the input order does not matter.
	slices.Reverse(svcs)
	again, _ := Candidates(svcs, "hub", "broker.test")
	if !slices.Equal(again, got) {
		t.Errorf("order depends on input order: %v vs %v", again, got)
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`MQTT\ on\ hub`: "MQTT on hub",
		`a\.b`:          "a.b",
		`caf\195\169`:   "café",
		`plain`:         "plain",
		`trailing\`:     `trailing\`,
		`\999x`:         "999x",
		`back\\slash`:   `back\slash`,
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzCandidates(f *testing.F) {
	f.Add("inst", "host=broker.test", "192.0.2.1", 8883, "broker.test")
	f.Fuzz(func(t *testing.T, inst, txt, addr string, port int, host string) {
		var addrs []netip.Addr
		if a, err := netip.ParseAddr(addr); err == nil {
			addrs = append(addrs, a)
		}
		cs, _ := Candidates([]Service{{Instance: Unescape(inst), Port: port, Addrs: addrs, TXT: []string{txt}}}, "", host)
		for _, c := range cs {
			if !c.Addr.IsValid() || c.Addr.Port() == 0 {
				t.Fatalf("invalid candidate %v", c)
			}
		}
	})
}
