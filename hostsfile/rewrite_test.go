package hostsfile

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/")

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

var brokerPin = []Pin{{Name: "broker.test", Addrs: addrs("192.0.2.10")}}

type rewriteCase struct {
	name          string // testdata/rewrite/<name>.in, .out (or .err)
	pins          []Pin
	wantChanged   bool
	wantErrLine   int        // > 0: refused with ErrMalformed naming this line
	wantConflicts []Conflict // Conflicts(next, pinned names)
}

var rewriteCases = []rewriteCase{
	{name: "empty", pins: brokerPin, wantChanged: true},
	{name: "comments_tabs", pins: brokerPin, wantChanged: true},
	{name: "crlf", pins: brokerPin, wantChanged: true},
	{name: "crlf_block_middle", pins: brokerPin, wantChanged: true},
	{name: "ipv6", pins: []Pin{{Name: "broker.test", Addrs: addrs("2001:db8::10", "192.0.2.10")}}, wantChanged: true},
	{name: "no_final_newline", pins: brokerPin, wantChanged: true},
	{name: "no_final_newline_block", pins: []Pin{{Name: "broker.test", Addrs: addrs("192.0.2.11")}}, wantChanged: true},
	{name: "duplicates", pins: brokerPin, wantChanged: true},
	{name: "conflict", pins: brokerPin, wantChanged: true, wantConflicts: []Conflict{
		{Line: 2, Text: "10.0.0.99 Broker.test old-broker # someone pinned it by hand"},
	}},
	{name: "replace_address", pins: brokerPin, wantChanged: true},
	{name: "same_pins", pins: brokerPin, wantChanged: false},
	{name: "remove", pins: nil, wantChanged: true},
	{name: "remove_absent", pins: nil, wantChanged: false},
	{name: "remove_absent_empty", pins: nil, wantChanged: false},
	{name: "edited_block", pins: brokerPin, wantChanged: true},
	{name: "canonical_order", pins: []Pin{
		{Name: "mqtt.test", Addrs: addrs("2001:db8::2", "::ffff:192.0.2.20", "192.0.2.3", "2001:db8::2")},
		{Name: "broker.test", Addrs: addrs("192.0.2.10")},
	}, wantChanged: true},
	{name: "marker_lookalikes", pins: brokerPin, wantChanged: true},
	{name: "trailing_cr", pins: brokerPin, wantChanged: true},
	{name: "begin_without_end", pins: brokerPin, wantErrLine: 2},
	{name: "end_without_begin", pins: brokerPin, wantErrLine: 3},
	{name: "two_blocks", pins: brokerPin, wantErrLine: 5},
	{name: "nested_begin", pins: brokerPin, wantErrLine: 3},
	{name: "end_without_begin", pins: nil, wantErrLine: 3}, // removal refuses too
}

func readCase(t testing.TB, name string) []byte {
	t.Helper()
	in, err := os.ReadFile(filepath.Join("testdata", "rewrite", name+".in"))
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// golden compares got with testdata/rewrite/<file>, or writes it under -update.
func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "rewrite", file)
	if *updateGolden {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s:\ngot:\n%q\nwant:\n%q", path, got, want)
	}
}

func pinNames(pins []Pin) []string {
	var names []string
	for _, p := range pins {
		names = append(names, p.Name)
	}
	return names
}

func TestRewrite(t *testing.T) {
	for _, tc := range rewriteCases {
		t.Run(fmt.Sprintf("%s/%d_pins", tc.name, len(tc.pins)), func(t *testing.T) {
			in := readCase(t, tc.name)
			next, changed, err := Rewrite(in, tc.pins)
			if tc.wantErrLine > 0 {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("Rewrite: err = %v, want ErrMalformed", err)
				}
				if want := fmt.Sprintf("line %d:", tc.wantErrLine); !strings.Contains(err.Error(), want) {
					t.Errorf("Rewrite: err = %q, want it to name %q", err, want)
				}
				if next != nil || changed {
					t.Errorf("Rewrite refused but returned changed=%v, %d bytes", changed, len(next))
				}
				if len(tc.pins) > 0 {
					golden(t, tc.name+".err", []byte(err.Error()+"\n"))
				}
				return
			}
			if err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			if changed != tc.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tc.wantChanged)
			}
			if changed == bytes.Equal(next, in) {
				t.Errorf("changed = %v but output equal to input: %v", changed, bytes.Equal(next, in))
			}
			if !changed && !bytes.Equal(next, in) {
				t.Errorf("unchanged but bytes differ")
			}
			if len(tc.pins) > 0 || changed {
				golden(t, fmt.Sprintf("%s.%d.out", tc.name, len(tc.pins)), next)
			}
			checkOutside(t, in, next)

			again, changed2, err := Rewrite(next, tc.pins)
			if err != nil || changed2 || !bytes.Equal(again, next) {
				t.Errorf("second Rewrite: changed=%v err=%v, identical=%v; want false, nil, true", changed2, err, bytes.Equal(again, next))
			}

			if got := Conflicts(next, pinNames(tc.pins)); !reflect.DeepEqual(got, tc.wantConflicts) {
				t.Errorf("Conflicts = %+v, want %+v", got, tc.wantConflicts)
			}
		})
	}
}

// TestRewriteRemoveRoundTrip: adding a block and removing it again gives
// back the original bytes, for every input that ends with a line ending.
func TestRewriteRemoveRoundTrip(t *testing.T) {
	for _, name := range []string{"empty", "comments_tabs", "crlf", "ipv6", "duplicates", "conflict", "remove_absent"} {
		t.Run(name, func(t *testing.T) {
			in := readCase(t, name)
			added, _, err := Rewrite(in, brokerPin)
			if err != nil {
				t.Fatal(err)
			}
			removed, changed, err := Rewrite(added, nil)
			if err != nil || !changed {
				t.Fatalf("remove: changed=%v err=%v", changed, err)
			}
			if !bytes.Equal(removed, in) {
				t.Errorf("after add and remove:\n%q\nwant the original:\n%q", removed, in)
			}
		})
	}
}

// TestRewriteRemoveKeepsRest spells out the removal case without a golden
// file: exactly the block's lines go.
func TestRewriteRemoveKeepsRest(t *testing.T) {
	in := readCase(t, "crlf_block_middle")
	want := "127.0.0.1 localhost\r\n10.0.0.5 nas\r\n"
	got, changed, err := Rewrite(in, nil)
	if err != nil || !changed || string(got) != want {
		t.Errorf("Rewrite(pins=nil) = %q, %v, %v; want %q, true, nil", got, changed, err, want)
	}
}

func TestRewriteSamePinsReturnsPrev(t *testing.T) {
	in := readCase(t, "same_pins")
	got, changed, err := Rewrite(in, brokerPin)
	if err != nil || changed {
		t.Fatalf("changed=%v err=%v, want false, nil", changed, err)
	}
	if &got[0] != &in[0] {
		t.Errorf("unchanged Rewrite returned a copy; want prev itself")
	}
}

// checkOutside asserts the fuzz properties: the bytes outside the block are
// those of prev (plus one line ending when a block was appended to a file
// without a final one), every line outside the block is kept in order, and
// next holds exactly the block for pins.
func checkOutside(t testing.TB, prev, next []byte) {
	t.Helper()
	po, no := outside(t, prev), outside(t, next)
	if !bytes.Equal(po, no) {
		ok := false
		if ls := splitLines(prev); len(ls) > 0 && ls[len(ls)-1].eol == "" {
			for _, eol := range []string{"\n", "\r\n"} {
				ok = ok || bytes.Equal(no, append(bytes.Clone(po), eol...))
			}
		}
		if !ok {
			t.Fatalf("bytes outside the block changed:\nprev: %q\nnext: %q", po, no)
		}
	}
	// The same as lines: each outside line of prev, in order, byte-identical.
	pl, nl := outsideLines(t, prev), outsideLines(t, next)
	if len(pl) != len(nl) {
		t.Fatalf("%d lines outside the block, want %d:\nprev: %q\nnext: %q", len(nl), len(pl), prev, next)
	}
	for i := range pl {
		if !bytes.Equal(pl[i].text, nl[i].text) && !(i == len(pl)-1 && pl[i].eol == "") {
			t.Fatalf("outside line %d is %q, want %q", i+1, nl[i].text, pl[i].text)
		}
		if pl[i].eol != nl[i].eol && pl[i].eol != "" {
			t.Fatalf("outside line %d ends with %q, want %q", i+1, nl[i].eol, pl[i].eol)
		}
	}
}

func outsideLines(t testing.TB, b []byte) []line {
	t.Helper()
	lines := splitLines(b)
	blk, err := findBlock(lines)
	if err != nil {
		t.Fatalf("findBlock(%q): %v", b, err)
	}
	if !blk.found() {
		return lines
	}
	return append(lines[:blk.begin:blk.begin], lines[blk.end+1:]...)
}

func outside(t testing.TB, b []byte) []byte {
	var out []byte
	for _, l := range outsideLines(t, b) {
		out = append(out, b[l.start:l.end]...)
	}
	return out
}

func TestPinValidation(t *testing.T) {
	ok := addrs("192.0.2.10")
	long := strings.Repeat("a", 63)
	for _, tc := range []struct {
		name string
		pins []Pin
	}{
		{"double dot", []Pin{{Name: "a..b", Addrs: ok}}},
		{"leading hyphen", []Pin{{Name: "-x", Addrs: ok}}},
		{"trailing hyphen", []Pin{{Name: "x-.test", Addrs: ok}}},
		{"space", []Pin{{Name: "x y", Addrs: ok}}},
		{"tab", []Pin{{Name: "x\ty", Addrs: ok}}},
		{"injected line", []Pin{{Name: "broker.test\n10.0.0.1 evil", Addrs: ok}}},
		{"injected CR", []Pin{{Name: "broker.test\r", Addrs: ok}}},
		{"comment", []Pin{{Name: "broker#x", Addrs: ok}}},
		{"underscore", []Pin{{Name: "_mqtt.test", Addrs: ok}}},
		{"non-ASCII", []Pin{{Name: "bröker.test", Addrs: ok}}},
		{"NUL", []Pin{{Name: "broker\x00.test", Addrs: ok}}},
		{"empty", []Pin{{Name: "", Addrs: ok}}},
		{"leading dot", []Pin{{Name: ".test", Addrs: ok}}},
		{"trailing dot", []Pin{{Name: "broker.test.", Addrs: ok}}},
		{"label too long", []Pin{{Name: long + "a.test", Addrs: ok}}},
		{"name too long", []Pin{{Name: strings.Repeat(long+".", 4) + "test", Addrs: ok}}}, // 4*64+4 = 260
		{"looks like an address", []Pin{{Name: "10.0.0.1", Addrs: ok}}},
		{"no addresses", []Pin{{Name: "broker.test"}}},
		{"empty addresses", []Pin{{Name: "broker.test", Addrs: []netip.Addr{}}}},
		{"zero address", []Pin{{Name: "broker.test", Addrs: []netip.Addr{{}}}}},
		{"unspecified v4", []Pin{{Name: "broker.test", Addrs: addrs("0.0.0.0")}}},
		{"unspecified v6", []Pin{{Name: "broker.test", Addrs: addrs("::")}}},
		{"multicast", []Pin{{Name: "broker.test", Addrs: addrs("224.0.0.251")}}},
		{"broadcast", []Pin{{Name: "broker.test", Addrs: addrs("255.255.255.255")}}},
		{"zone", []Pin{{Name: "broker.test", Addrs: addrs("fe80::1%eth0")}}},
		{"zone with newline", []Pin{{Name: "broker.test", Addrs: []netip.Addr{netip.MustParseAddr("fe80::1").WithZone("x\n10.0.0.1 evil")}}}},
		{"name twice", []Pin{{Name: "broker.test", Addrs: ok}, {Name: "BROKER.test", Addrs: ok}}},
		{"one bad among good", []Pin{{Name: "broker.test", Addrs: ok}, {Name: "a..b", Addrs: ok}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, prev := range [][]byte{nil, readCase(t, "same_pins")} {
				next, changed, err := Rewrite(prev, tc.pins)
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Rewrite: err = %v, want ErrInvalid", err)
				}
				if next != nil || changed {
					t.Errorf("refused but returned %q, changed=%v", next, changed)
				}
				if strings.ContainsAny(err.Error(), "\n\r") {
					t.Errorf("error message spans lines: %q", err)
				}
			}
		})
	}
}

func TestPinValidationAccepts(t *testing.T) {
	for _, name := range []string{
		"broker", "broker.test", "BROKER.Test", "a", "1broker.test", "x-1.lan", "mqtt.123abc",
		strings.Repeat("a", 63) + ".test",
		strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("b", 61), // 253 characters
	} {
		if _, _, err := Rewrite(nil, []Pin{{Name: name, Addrs: addrs("192.0.2.1", "::1", "127.0.0.1")}}); err != nil {
			t.Errorf("Rewrite with name %q (%d chars): %v", name, len(name), err)
		}
	}
}

func TestConflicts(t *testing.T) {
	data := []byte("10.0.0.1 broker.test\r\n" +
		"# 10.0.0.2 broker.test\n" +
		"10.0.0.3 other broker.TEST # alias\n" +
		"broker.test\n" + // a lone field maps nothing
		"# BEGIN agent\n" +
		"192.0.2.10\tbroker.test\n" +
		"# END agent\n" +
		"not-an-address\tbroker.test\n" +
		"10.0.0.4 broker.testing mqtt.test")
	got := Conflicts(data, []string{"broker.test", "mqtt.test"})
	want := []Conflict{
		{Line: 1, Text: "10.0.0.1 broker.test"},
		{Line: 3, Text: "10.0.0.3 other broker.TEST # alias"},
		{Line: 8, Text: "not-an-address\tbroker.test"},
		{Line: 9, Text: "10.0.0.4 broker.testing mqtt.test"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Conflicts =\n%+v\nwant\n%+v", got, want)
	}
	if got := Conflicts(data, nil); got != nil {
		t.Errorf("Conflicts(no names) = %+v, want none", got)
	}
	// A broken block hides nothing.
	broken := []byte("# BEGIN agent\n192.0.2.10 broker.test\n")
	if got := Conflicts(broken, []string{"broker.test"}); len(got) != 1 || got[0].Line != 2 {
		t.Errorf("Conflicts(broken block) = %+v, want line 2", got)
	}
}

// FuzzRewrite: for any prev, a successful Rewrite keeps every byte outside
// the block and is idempotent; a refusal is ErrInvalid or ErrMalformed.
func FuzzRewrite(f *testing.F) {
	for _, tc := range rewriteCases {
		in := readCase(f, tc.name)
		name, as := "", ""
		if len(tc.pins) > 0 {
			name = tc.pins[0].Name
			for _, a := range tc.pins[0].Addrs {
				as += a.String() + ","
			}
		}
		f.Add(in, name, as)
	}
	f.Add([]byte("a\r"), "broker.test", "192.0.2.1")
	f.Add([]byte("# BEGIN agent\n# END agent"), "broker.test", "::1")
	f.Fuzz(func(t *testing.T, prev []byte, name, addrList string) {
		var pins []Pin
		if name != "" || addrList != "" {
			p := Pin{Name: name}
			for _, s := range strings.Split(addrList, ",") {
				if s == "" {
					continue
				}
				a, _ := netip.ParseAddr(s) // invalid ones stay the zero Addr, which must be refused
				p.Addrs = append(p.Addrs, a)
			}
			pins = []Pin{p}
		}
		next, changed, err := Rewrite(prev, pins)
		Conflicts(prev, []string{name})
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("Rewrite: unexpected error kind: %v", err)
			}
			if _, verr := canonical(pins); verr == nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("valid pins refused: %v", err)
			}
			return
		}
		if changed == bytes.Equal(prev, next) {
			t.Fatalf("changed=%v, but equal=%v", changed, bytes.Equal(prev, next))
		}
		checkOutside(t, prev, next)

		// The block holds exactly the canonical pins, or is absent.
		lines := splitLines(next)
		blk, err := findBlock(lines)
		if err != nil {
			t.Fatalf("Rewrite's output has a broken block: %v", err)
		}
		if blk.found() != (len(pins) > 0) {
			t.Fatalf("block present=%v with %d pins", blk.found(), len(pins))
		}
		if blk.found() {
			canon, _ := canonical(pins)
			var want []string
			want = append(want, beginMarker)
			for _, a := range canon[0].Addrs {
				want = append(want, a.String()+"\t"+canon[0].Name)
			}
			want = append(want, endMarker)
			var got []string
			for _, l := range lines[blk.begin : blk.end+1] {
				got = append(got, string(l.text))
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("block = %q, want %q", got, want)
			}
		}

		again, changed2, err := Rewrite(next, pins)
		if err != nil || changed2 || !bytes.Equal(again, next) {
			t.Fatalf("not idempotent: changed=%v err=%v\nnext:  %q\nagain: %q", changed2, err, next, again)
		}
	})
}
