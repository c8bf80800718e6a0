package buffer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// indexEvery is how many records apart the sparse per-segment index
// points: finding any offset decodes at most this many frames.
const indexEvery = 64

// scanResult is what a segment holds.
type scanResult struct {
	valid int64             // bytes of whole, verified frames from the start
	n     uint64            // records in that prefix
	index []int64           // byte position of records 0, indexEvery, 2*indexEvery…
	seqs  map[string]uint64 // highest seq per sensor in the prefix
	bad   *frameError       // why the prefix ends before the data does, or nil
}

// scanSegment reads frames from r until the data ends, a frame is bad or
// limit frames have been read.
// It never reads more than one frame's worth ahead, so a length field of
// any value cannot make it allocate more than maxBodyBytes, and every
// iteration consumes input, so it always ends.
func scanSegment(r io.Reader, limit uint64) scanResult {
	res := scanResult{seqs: map[string]uint64{}}
	br := bufio.NewReaderSize(r, 64<<10)
	var hdr [frameHeader]byte
	var body []byte
	for res.n < limit {
		k, err := io.ReadFull(br, hdr[:])
		if err == io.EOF {
			return res // clean end
		}
		if err != nil {
			res.bad = readErr(err, fmt.Sprintf("%d bytes of an %d-byte header", k, frameHeader))
			return res
		}
		n, ferr := checkHeader(hdr[:])
		if ferr != nil {
			res.bad = ferr.(*frameError)
			return res
		}
		if cap(body) < frameHeader+n {
			body = make([]byte, frameHeader+n)
		}
		body = body[:frameHeader+n]
		copy(body, hdr[:])
		if k, err := io.ReadFull(br, body[frameHeader:]); err != nil {
			res.bad = readErr(err, fmt.Sprintf("%d bytes of a %d-byte body", k, n))
			return res
		}
		rec, size, derr := decodeFrame(body)
		if derr != nil {
			res.bad = derr.(*frameError)
			return res
		}
		if res.n%indexEvery == 0 {
			res.index = append(res.index, res.valid)
		}
		res.seqs[rec.Sensor] = max(res.seqs[rec.Sensor], rec.Seq)
		res.valid += int64(size)
		res.n++
	}
	return res
}

func readErr(err error, detail string) *frameError {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return &frameError{reasonShort, detail}
	}
	return &frameError{reasonIO, err.Error()}
}
