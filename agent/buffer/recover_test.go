package buffer

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// framePositions returns where each frame of a valid segment starts.
func framePositions(t *testing.T, data []byte) []int64 {
	t.Helper()
	var pos []int64
	for p := 0; p < len(data); {
		_, n, err := decodeFrame(data[p:])
		if err != nil {
			t.Fatalf("test segment invalid at %d: %v", p, err)
		}
		pos = append(pos, int64(p))
		p += n
	}
	return append(pos, int64(len(data)))
}

func TestRecoverDamagedSegments(t *testing.T) {
	const total = 60
	cases := []struct {
		name   string
		target int // which segment file (-1: the last)
		mutate func(data []byte, pos []int64) []byte
		kept   int // records of the target kept
		bad    func(pos []int64) int64
		reason string // "" = any
	}{
		{"flipped byte", 1, func(d []byte, pos []int64) []byte { d[pos[3]+12] ^= 0x40; return d }, 3,
			func(pos []int64) int64 { return pos[3] }, reasonCRC},
		{"flipped length", 1, func(d []byte, pos []int64) []byte { d[pos[2]+3] ^= 0x80; return d }, 2,
			func(pos []int64) int64 { return pos[2] }, reasonLength},
		{"cut mid-frame", 1, func(d []byte, pos []int64) []byte { return d[:pos[4]+5] }, 4,
			func(pos []int64) int64 { return pos[4] }, reasonShort},
		{"cut mid-header of the last segment", -1, func(d []byte, pos []int64) []byte { return d[:pos[1]+3] }, 1,
			func(pos []int64) int64 { return pos[1] }, reasonShort},
		{"garbage segment", 1, func(d []byte, pos []int64) []byte {
			r := rand.New(rand.NewPCG(1, 2))
			for i := range d {
				d[i] = byte(r.Uint32())
			}
			return d
		}, 0, func([]int64) int64 { return 0 }, ""},
		{"all zeros", 1, func(d []byte, pos []int64) []byte { return make([]byte, len(d)) }, 0,
			func([]int64) int64 { return 0 }, reasonLength},
		{"zero length", 1, func(d []byte, pos []int64) []byte { return nil }, 0,
			func([]int64) int64 { return 0 }, "empty"},
		{"valid body, unknown version", 1, func(d []byte, pos []int64) []byte {
			body := append([]byte(nil), d[pos[1]+frameHeader:pos[2]]...)
			body[0] = 9
			var r []byte
			r = append(r, d[:pos[1]]...)
			r = append(r, 0, 0, 0, 0, 0, 0, 0, 0)
			putFrameHeader(r[pos[1]:], body)
			return append(r, body...)
		}, 1, func(pos []int64) int64 { return pos[1] }, reasonBody},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			o := Options{Dir: dir, SegmentBytes: 1 << 10, MaxBytes: 1 << 20, Sync: SyncNever}
			l := openT(t, o)
			appendRange(t, l, 1, total)
			mustClose(t, l)

			names := segFiles(t, dir)
			if len(names) < 4 {
				t.Fatalf("only %d segments", len(names))
			}
			ti := tc.target
			if ti < 0 {
				ti = len(names) - 1
			}
			name := names[ti]
			first, _ := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
			path := filepath.Join(dir, name)
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			pos := framePositions(t, orig)
			inTarget := len(pos) - 1
			damaged := tc.mutate(append([]byte(nil), orig...), pos)
			if err := os.WriteFile(path, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			badAt := tc.bad(pos)

			var lb logBuf
			o.Logger = lb.logger()
			l = openT(t, o)
			rep := l.Report()
			if len(rep.Aside) != 1 {
				t.Fatalf("Report.Aside = %+v, want one entry", rep.Aside)
			}
			a := rep.Aside[0]
			if a.Segment != name || a.Offset != badAt || (tc.reason != "" && a.Reason != tc.reason) {
				t.Fatalf("Aside = %+v, want %s at byte %d, reason %q", a, name, badAt, tc.reason)
			}
			if wantLost := uint64(inTarget - tc.kept); rep.Lost != wantLost {
				t.Fatalf("Report.Lost = %d, want %d", rep.Lost, wantLost)
			}
			switch {
			case len(damaged) == 0:
				if _, err := os.Stat(path); !os.IsNotExist(err) {
					t.Fatalf("empty segment still there: %v", err)
				}
			case tc.kept == 0:
				if _, err := os.Stat(path); !os.IsNotExist(err) {
					t.Fatalf("wholly bad segment still in place: %v", err)
				}
				moved, err := os.ReadFile(a.Path)
				if err != nil || !bytes.Equal(moved, damaged) {
					t.Fatalf("aside file %s: %v (equal %v)", a.Path, err, bytes.Equal(moved, damaged))
				}
			default:
				if got := fileSize(t, path); got != badAt {
					t.Fatalf("%s is %d bytes, want truncated to %d", name, got, badAt)
				}
				moved, err := os.ReadFile(a.Path)
				if err != nil || !bytes.Equal(moved, damaged[badAt:]) {
					t.Fatalf("aside file %s: %v, want the %d bytes after %d", a.Path, err, len(damaged)-int(badAt), badAt)
				}
			}
			if len(damaged) > 0 && (!strings.Contains(lb.String(), "level=WARN") || !strings.Contains(lb.String(), "byte="+strconv.FormatInt(badAt, 10))) {
				t.Fatalf("no Warn naming the byte offset:\n%s", lb.String())
			}

			// The prefix up to the damage, then every later segment.
			want := []uint64{}
			for i := uint64(1); i < first+uint64(tc.kept); i++ {
				want = append(want, i)
			}
			for i := first + uint64(inTarget); i <= total; i++ {
				want = append(want, i)
			}
			checkOffsets(t, readAll(t, l, 0), want)
			if off, err := l.Append(rec(total + 1)); err != nil || off != total+1 {
				t.Fatalf("Append after recovery = %d, %v; want %d", off, err, total+1)
			}
			mustClose(t, l)

			// A second open finds nothing more to repair.
			o.Logger = nil
			l = openT(t, o)
			if rep := l.Report(); len(rep.Aside) != 0 || rep.Lost != 0 {
				t.Fatalf("second open: %+v", rep)
			}
			checkOffsets(t, readAll(t, l, 0), append(want, total+1))
		})
	}
}

// putFrameHeader writes a valid header for body into h.
func putFrameHeader(h, body []byte) {
	binary.LittleEndian.PutUint32(h, uint32(len(body)))
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(body, castagnoli))
}

func checkOffsets(t *testing.T, es []Entry, want []uint64) {
	t.Helper()
	if len(es) != len(want) {
		t.Fatalf("got %d entries (%s), want %d", len(es), span2(es), len(want))
	}
	for i, e := range es {
		checkEntry(t, e, want[i])
	}
}

func TestRecoverOddFiles(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, SegmentBytes: 1 << 10, MaxBytes: 1 << 20}
	l := openT(t, o)
	appendRange(t, l, 1, 30)
	mustClose(t, l)
	// A segment not named by the format, an empty segment named past the
	// end (a crash right after creating it), and an unrelated file.
	for name, data := range map[string][]byte{
		"junk.seg":         []byte("junk"),
		segName(1000):      nil,
		"notes.txt":        []byte("left alone"),
		"00000000000x.seg": []byte("x"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l = openT(t, o)
	rep := l.Report()
	reasons := map[string]string{}
	for _, a := range rep.Aside {
		reasons[a.Segment] = a.Reason
	}
	if reasons["junk.seg"] != "name" || reasons["00000000000x.seg"] != "name" || reasons[segName(1000)] != "empty" || len(reasons) != 3 {
		t.Fatalf("Aside = %+v", rep.Aside)
	}
	checkEntries(t, readAll(t, l, 0), 1, 30)
	// The empty segment's name had been handed out: offsets go past it.
	if off, _ := l.Append(rec(1)); off < 1000 {
		t.Fatalf("next offset %d, want >= 1000 (the empty segment's name)", off)
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatalf("unrelated file touched: %v", err)
	}
}

func TestRecoverOverlappingSegments(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, SegmentBytes: 1 << 10, MaxBytes: 1 << 20}
	l := openT(t, o)
	appendRange(t, l, 1, 30)
	mustClose(t, l)
	names := segFiles(t, dir)
	first2, _ := strconv.ParseUint(strings.TrimSuffix(names[1], segSuffix), 10, 64)
	if first2 < 5 {
		t.Skip("segments too small for this test")
	}
	// Rename segment 2 to start 2 offsets earlier: an overlap.
	if err := os.Rename(filepath.Join(dir, names[1]), filepath.Join(dir, segName(first2-2))); err != nil {
		t.Fatal(err)
	}
	l = openT(t, o)
	rep := l.Report()
	if len(rep.Aside) != 1 || rep.Aside[0].Reason != reasonOverlap || rep.Aside[0].Segment != names[0] {
		t.Fatalf("Aside = %+v, want the first segment's last 2 records moved aside (overlap)", rep.Aside)
	}
	// The moved segment now ends 2 offsets early: a gap before the third.
	if rep.Lost != 2 {
		t.Fatalf("Report.Lost = %d, want 2", rep.Lost)
	}
	if es := readAll(t, l, 0); len(es) != 28 || es[len(es)-1].Offset != 30 {
		t.Fatalf("got %s (%d entries), want 28 ending at 30", span2(es), len(es))
	}
}
