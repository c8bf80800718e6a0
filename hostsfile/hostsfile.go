// Package hostsfile pins the broker's certificate name to the address the
// agent discovered on the LAN, in /etc/hosts, so that the agent and every
// other client on the board resolve the name the broker's certificate carries
// and TLS verification works without DNS.
//
// The LAN decides only the address; the name is the configured broker host
// name, validated as an RFC 1123 host name, and addresses are typed
// netip.Addr values, so nothing received from the network can add a line, a
// name or a comment to the file. The agent owns one marked block and never
// touches a byte outside it:
//
//	127.0.0.1	localhost
//	# BEGIN agent (managed by the edge agent; edits inside are replaced)
//	192.0.2.10	broker.test
//	# END agent
//
// The work is split into a pure core and a thin I/O shell. Rewrite computes
// the new content and reports whether it differs, so an unchanged pin costs no
// flash write. Write replaces a file atomically (temp file, fsync, rename,
// fsync of the directory), falling back to an in-place write under flock when
// the file is a bind mount, as container runtimes make /etc/hosts. Update
// combines them under a lock:
//
//	pin := hostsfile.Pin{Name: "broker.test", Addrs: []netip.Addr{found}}
//	changed, conflicts, err := hostsfile.Update("/etc/hosts", []hostsfile.Pin{pin})
//	if err != nil {
//		return fmt.Errorf("discovery: pin %s: %w", pin.Name, err)
//	}
//	for _, c := range conflicts {
//		log.Warn("hosts file maps the broker name outside the agent's block", "line", c.Line, "text", c.Text)
//	}
//
// Update with no pins removes the block and leaves the rest of the file as it
// was.
package hostsfile

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Pin maps one host name to one or more addresses.
type Pin struct {
	Name  string       // RFC 1123 host name, validated
	Addrs []netip.Addr // IPv4 and/or IPv6; at least one
}

// ErrInvalid is wrapped by every refusal of a pin: a name that is not an
// RFC 1123 host name, a pin without addresses, an address that cannot name a
// host, the same name twice.
var ErrInvalid = errors.New("invalid pin")

// ErrMalformed is wrapped when the agent's block in the file is broken (BEGIN
// without END, END without BEGIN, two blocks). The file is then left alone:
// rewriting would risk deleting lines someone else wrote.
var ErrMalformed = errors.New("malformed agent block")

// The markers of the agent's block. Lines are recognised by their first three
// words, so a marker whose comment was edited or which gained trailing blanks
// is still the agent's; they are written back exactly as here.
const (
	beginMarker = "# BEGIN agent (managed by the edge agent; edits inside are replaced)"
	endMarker   = "# END agent"
	beginWords  = "# BEGIN agent"
	endWords    = "# END agent"
)

// Rewrite is the pure core: it returns prev with the agent's block replaced by
// lines for pins, one line per address ("address<TAB>name"). A block is added
// at the end when absent; empty pins remove it. changed is false exactly when
// next equals prev, in which case next is prev and the caller need not write.
//
// Every byte outside the block is kept: comments, blanks, tabs, line endings,
// other blocks' markers, duplicate and conflicting entries. The one exception
// is that appending a block to a file without a final line ending adds one
// after the last line first. Inside the block the file's line ending is used
// (that of the first complete line outside the block, else of the old
// block's first line, else "\n").
//
// The block's lines are canonical (names sorted, addresses deduplicated and
// sorted with IPv4 first), so discovery returning the same set in another
// order does not rewrite the file. Invalid pins are refused with ErrInvalid,
// a broken block with ErrMalformed naming the line; neither ever panics.
func Rewrite(prev []byte, pins []Pin) (next []byte, changed bool, err error) {
	next, changed, err = rewrite(prev, pins)
	if err != nil {
		return nil, false, fmt.Errorf("hostsfile: %w", err)
	}
	return next, changed, nil
}

func rewrite(prev []byte, pins []Pin) ([]byte, bool, error) {
	canon, err := canonical(pins)
	if err != nil {
		return nil, false, err
	}
	lines := splitLines(prev)
	blk, err := findBlock(lines)
	if err != nil {
		return nil, false, err
	}
	eol := chooseEOL(lines, blk)

	var out bytes.Buffer
	out.Grow(len(prev) + 128)
	if blk.found() {
		out.Write(prev[:lines[blk.begin].start])
		writeBlock(&out, canon, eol)
		out.Write(prev[lines[blk.end].end:])
	} else {
		out.Write(prev)
		if len(canon) > 0 {
			if n := len(lines); n > 0 && lines[n-1].eol == "" {
				out.WriteString(eol)
			}
			writeBlock(&out, canon, eol)
		}
	}
	if bytes.Equal(out.Bytes(), prev) {
		return prev, false, nil
	}
	return out.Bytes(), true, nil
}

func writeBlock(out *bytes.Buffer, pins []Pin, eol string) {
	if len(pins) == 0 {
		return
	}
	out.WriteString(beginMarker + eol)
	for _, p := range pins {
		for _, a := range p.Addrs {
			out.WriteString(a.String() + "\t" + p.Name + eol)
		}
	}
	out.WriteString(endMarker + eol)
}

// Conflict is a line outside the agent's block that maps a pinned name. It is
// reported so the daemon can log it, and never edited: depending on the
// resolver, its address is returned instead of the pin's (glibc's
// gethostbyname takes the first matching line) or beside it (getaddrinfo and
// Go collect every match), so a client may reach the wrong host.
type Conflict struct {
	Line int    // 1-based
	Text string // the line without its line ending
}

// Conflicts lists the lines outside the agent's block that map one of names
// (compared case-insensitively, as the resolver does). A broken block does not
// hide lines: then every line counts as outside.
func Conflicts(data []byte, names []string) []Conflict {
	lines := splitLines(data)
	blk, err := findBlock(lines)
	if err != nil {
		blk = block{begin: -1, end: -1}
	}
	var out []Conflict
	for i, l := range lines {
		if blk.found() && i >= blk.begin && i <= blk.end {
			continue
		}
		if mapsAny(l.text, names) {
			out = append(out, Conflict{Line: i + 1, Text: string(l.text)})
		}
	}
	return out
}

// mapsAny reports whether a hosts line ("address name [alias...] [# comment]")
// lists one of names. The address is not checked: a line the resolver would
// skip is still worth a warning when it mentions the broker.
func mapsAny(text []byte, names []string) bool {
	if i := bytes.IndexByte(text, '#'); i >= 0 {
		text = text[:i]
	}
	fields := bytes.Fields(text)
	if len(fields) < 2 {
		return false
	}
	for _, f := range fields[1:] {
		for _, n := range names {
			if n != "" && strings.EqualFold(string(f), n) {
				return true
			}
		}
	}
	return false
}

// line is one line of the file: text without its ending, the ending ("\n",
// "\r\n", or "" for a last line without one), and its byte range.
type line struct {
	text       []byte
	eol        string
	start, end int
}

func splitLines(b []byte) []line {
	var lines []line
	for start := 0; start < len(b); {
		i := bytes.IndexByte(b[start:], '\n')
		if i < 0 {
			lines = append(lines, line{text: b[start:], start: start, end: len(b)})
			break
		}
		end := start + i + 1
		l := line{text: b[start : start+i], eol: "\n", start: start, end: end}
		if n := len(l.text); n > 0 && l.text[n-1] == '\r' {
			l.text, l.eol = l.text[:n-1], "\r\n"
		}
		lines = append(lines, l)
		start = end
	}
	return lines
}

// block holds the line indexes of the BEGIN and END markers, -1 when absent.
type block struct{ begin, end int }

func (b block) found() bool { return b.begin >= 0 }

func findBlock(lines []line) (block, error) {
	blk := block{begin: -1, end: -1}
	open := -1
	for i, l := range lines {
		switch {
		case isMarker(l.text, beginWords):
			if open >= 0 {
				return blk, fmt.Errorf("line %d: BEGIN agent inside the block begun on line %d: %w", i+1, open+1, ErrMalformed)
			}
			if blk.found() {
				return blk, fmt.Errorf("line %d: a second agent block (the first begins on line %d): %w", i+1, blk.begin+1, ErrMalformed)
			}
			open = i
		case isMarker(l.text, endWords):
			if open < 0 {
				return blk, fmt.Errorf("line %d: END agent without BEGIN agent: %w", i+1, ErrMalformed)
			}
			blk = block{begin: open, end: i}
			open = -1
		}
	}
	if open >= 0 {
		return blk, fmt.Errorf("line %d: BEGIN agent without END agent: %w", open+1, ErrMalformed)
	}
	return blk, nil
}

// isMarker reports whether text is words, possibly followed by a blank and a
// comment, with leading and trailing blanks allowed. "# BEGIN agents" is not a
// marker.
func isMarker(text []byte, words string) bool {
	t := bytes.Trim(text, " \t\r")
	rest, ok := bytes.CutPrefix(t, []byte(words))
	return ok && (len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t')
}

// chooseEOL returns the ending of the first complete line outside the block,
// else of the first complete line inside it, else "\n". Rewriting its own
// output picks the same ending again, which keeps Rewrite idempotent.
func chooseEOL(lines []line, blk block) string {
	inside := func(i int) bool { return blk.found() && i >= blk.begin && i <= blk.end }
	for i, l := range lines {
		if l.eol != "" && !inside(i) {
			return l.eol
		}
	}
	for i, l := range lines {
		if l.eol != "" && inside(i) {
			return l.eol
		}
	}
	// A last line ending in a carriage return becomes a CRLF line once the
	// block is appended after it; using CRLF keeps the second pass stable.
	if n := len(lines); n > 0 && bytes.HasSuffix(lines[n-1].text, []byte("\r")) {
		return "\r\n"
	}
	return "\n"
}

// canonical validates pins and returns them in the form they are written:
// sorted by name, addresses unmapped, deduplicated and sorted.
func canonical(pins []Pin) ([]Pin, error) {
	out := make([]Pin, 0, len(pins))
	seen := make(map[string]bool, len(pins))
	for _, p := range pins {
		if err := validName(p.Name); err != nil {
			return nil, err
		}
		key := strings.ToLower(p.Name)
		if seen[key] {
			return nil, fmt.Errorf("%w: host name %q pinned twice", ErrInvalid, p.Name)
		}
		seen[key] = true
		if len(p.Addrs) == 0 {
			return nil, fmt.Errorf("%w: host name %q has no address", ErrInvalid, p.Name)
		}
		addrs := make([]netip.Addr, 0, len(p.Addrs))
		for _, a := range p.Addrs {
			a = a.Unmap()
			if err := validAddr(a); err != nil {
				return nil, fmt.Errorf("%w: address for %q: %v", ErrInvalid, p.Name, err)
			}
			addrs = append(addrs, a)
		}
		slices.SortFunc(addrs, netip.Addr.Compare)
		out = append(out, Pin{Name: p.Name, Addrs: slices.Compact(addrs)})
	}
	slices.SortFunc(out, func(a, b Pin) int {
		return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	})
	return out, nil
}

// validName accepts RFC 1123 host names: dot-separated labels of 1 to 63
// letters, digits and hyphens, not starting or ending with a hyphen, 253
// characters at most. A name whose last label is all digits is refused: it
// would read as an address. No trailing dot: the resolver compares names
// literally.
// ValidName checks a host name as Pin does (RFC 1123, no trailing dot, not
// all-numeric at the end), wrapping ErrInvalid.
func ValidName(name string) error { return validName(name) }

func validName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: host name %q: %s", ErrInvalid, name, why)
	}
	if name == "" {
		return bad("empty")
	}
	if len(name) > 253 {
		return bad(fmt.Sprintf("%d characters, at most 253 allowed", len(name)))
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" {
			return bad("empty label (leading, trailing or double dot)")
		}
		if len(l) > 63 {
			return bad(fmt.Sprintf("label of %d characters, at most 63 allowed", len(l)))
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return bad("label starts or ends with a hyphen")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return bad(fmt.Sprintf("character %q not allowed (letters, digits, hyphen, dot)", c))
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return bad("last label is all digits, which reads as an address")
	}
	return nil
}

// validAddr refuses addresses that cannot be a broker's: the zero value, the
// unspecified and broadcast addresses, multicast, and IPv6 zones (the hosts
// file has no syntax for them, and a zone is free text).
func validAddr(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return errors.New("missing (zero netip.Addr)")
	case a.Zone() != "":
		return fmt.Errorf("%q has an IPv6 zone, which a hosts file cannot hold", a.String())
	case a.IsUnspecified():
		return fmt.Errorf("%s is the unspecified address", a)
	case a.IsMulticast():
		return fmt.Errorf("%s is a multicast address", a)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%s is the broadcast address", a)
	}
	return nil
}
