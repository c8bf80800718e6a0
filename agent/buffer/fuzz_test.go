package buffer

import (
	"bytes"
	"testing"
)

// seedFrames are valid and broken frames for the fuzz targets.
func seedFrames() [][]byte {
	one := appendFrame(nil, rec(1))
	two := appendFrame(appendFrame(nil, rec(2)), Record{Topic: "t", Sensor: "s", Seq: 1 << 60, Payload: []byte{0, 1, 2}})
	flipped := append([]byte(nil), one...)
	flipped[len(flipped)-1] ^= 1
	huge := append([]byte(nil), one...)
	huge[3] = 0xff
	return [][]byte{
		nil,
		one,
		two,
		one[:5],
		one[:len(one)-1],
		flipped,
		huge,
		make([]byte, 64),
		append(one, 0, 0, 0),
		appendFrame(nil, Record{Topic: "x"}),
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := decodeFrame(b)
		if err != nil {
			if _, ok := err.(*frameError); !ok {
				t.Fatalf("error %T %v is not a frameError", err, err)
			}
			return
		}
		if n < frameHeader+1 || n > len(b) {
			t.Fatalf("frame size %d for %d bytes", n, len(b))
		}
		// A frame that decodes re-encodes to the same bytes.
		if again := appendFrame(nil, r); !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoded %x, decoded from %x", again, b[:n])
		}
	})
}

func FuzzScanSegment(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s, uint8(255))
	}
	f.Add(append(appendFrame(nil, rec(1)), appendFrame(nil, rec(2))...), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, limit uint8) {
		lim := uint64(limit)
		if limit == 255 {
			lim = ^uint64(0)
		}
		res := scanSegment(bytes.NewReader(b), lim)
		if res.valid > int64(len(b)) || res.n > lim {
			t.Fatalf("valid %d of %d bytes, %d records (limit %d)", res.valid, len(b), res.n, lim)
		}
		if res.valid < int64(len(b)) && res.bad == nil && res.n < lim {
			t.Fatalf("stopped at %d of %d bytes with no reason", res.valid, len(b))
		}
		// The valid prefix scans clean, to the same result.
		again := scanSegment(bytes.NewReader(b[:res.valid]), lim)
		if again.valid != res.valid || again.n != res.n || again.bad != nil {
			t.Fatalf("prefix rescan: %d bytes, %d records, %v; first scan %d, %d", again.valid, again.n, again.bad, res.valid, res.n)
		}
		if uint64(len(res.index)) != (res.n+indexEvery-1)/indexEvery {
			t.Fatalf("%d index entries for %d records", len(res.index), res.n)
		}
	})
}
