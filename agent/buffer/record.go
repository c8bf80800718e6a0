package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"unicode/utf8"
)

// Limits on a record. A topic the broker cannot accept would not be
// refused with a reason code but would close the connection, and the
// sender would retry it forever, so such records are refused at Append.
const (
	MaxPayload   = 1 << 20 // bytes of payload
	MaxTopic     = 65535   // bytes of topic (MQTT's limit)
	MaxSensor    = 255     // bytes of sensor name
	bodyVersion  = 1
	frameHeader  = 8 // u32 length + u32 CRC-32C
	maxBodyBytes = 1 + binary.MaxVarintLen64 + 2*binary.MaxVarintLen64 + MaxSensor + MaxTopic + MaxPayload
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Sentinel errors.
var (
	// ErrInvalidRecord is returned by Append for a record that can never
	// be stored or delivered; the error wraps it with the reason.
	ErrInvalidRecord = errors.New("buffer: invalid record")
	// ErrClosed is returned by Append and Read after Close.
	ErrClosed = errors.New("buffer: log closed")
)

// validate says why r cannot be stored, or nil.
func validate(r Record) error {
	switch {
	case r.Topic == "":
		return fmt.Errorf("%w: empty topic", ErrInvalidRecord)
	case len(r.Topic) > MaxTopic:
		return fmt.Errorf("%w: topic of %d bytes (max %d)", ErrInvalidRecord, len(r.Topic), MaxTopic)
	case !utf8.ValidString(r.Topic) || strings.ContainsAny(r.Topic, "+#\x00"):
		return fmt.Errorf("%w: topic %q is not a valid MQTT topic name", ErrInvalidRecord, r.Topic)
	case len(r.Sensor) > MaxSensor:
		return fmt.Errorf("%w: sensor name of %d bytes (max %d)", ErrInvalidRecord, len(r.Sensor), MaxSensor)
	case len(r.Payload) > MaxPayload:
		return fmt.Errorf("%w: payload of %d bytes (max %d)", ErrInvalidRecord, len(r.Payload), MaxPayload)
	}
	return nil
}

// frameSize is the size of r's frame on disk.
func frameSize(r Record) int {
	n := frameHeader + 1 + uvarintLen(r.Seq) +
		uvarintLen(uint64(len(r.Sensor))) + len(r.Sensor) +
		uvarintLen(uint64(len(r.Topic))) + len(r.Topic) +
		len(r.Payload)
	return n
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// appendFrame appends r's frame to dst:
// [u32 length of body][u32 CRC-32C of body][body], little-endian, where
// body = [u8 version][uvarint seq][uvarint len][sensor][uvarint len][topic][payload].
func appendFrame(dst []byte, r Record) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, frameHeader)...)
	dst = append(dst, bodyVersion)
	dst = binary.AppendUvarint(dst, r.Seq)
	dst = binary.AppendUvarint(dst, uint64(len(r.Sensor)))
	dst = append(dst, r.Sensor...)
	dst = binary.AppendUvarint(dst, uint64(len(r.Topic)))
	dst = append(dst, r.Topic...)
	dst = append(dst, r.Payload...)
	body := dst[start+frameHeader:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(body, castagnoli))
	return dst
}

// Why a frame could not be decoded. The names end up in the names of
// files moved aside, so they are short and safe in a path.
const (
	reasonShort   = "short"   // the data ends inside the frame
	reasonLength  = "length"  // the length field is zero or impossible
	reasonCRC     = "crc"     // the body does not match its checksum
	reasonBody    = "body"    // the checksum matches but the body does not parse
	reasonOverlap = "overlap" // records run into the next segment's offsets
	reasonIO      = "io"      // reading the file failed
)

// frameError says why a frame is bad.
type frameError struct{ reason, detail string }

func (e *frameError) Error() string { return e.reason + ": " + e.detail }

// checkHeader validates a frame header and returns the body length.
func checkHeader(h []byte) (int, error) {
	n := binary.LittleEndian.Uint32(h)
	if n == 0 || n > maxBodyBytes {
		return 0, &frameError{reasonLength, fmt.Sprintf("body length %d", n)}
	}
	return int(n), nil
}

// decodeFrame decodes the frame at the start of b. It returns the record,
// whose Payload aliases b, and the size of the frame. A frame that does
// not fit in b is a reasonShort error.
func decodeFrame(b []byte) (Record, int, error) {
	if len(b) < frameHeader {
		return Record{}, 0, &frameError{reasonShort, fmt.Sprintf("%d bytes of an %d-byte header", len(b), frameHeader)}
	}
	n, err := checkHeader(b)
	if err != nil {
		return Record{}, 0, err
	}
	if len(b)-frameHeader < n {
		return Record{}, 0, &frameError{reasonShort, fmt.Sprintf("%d bytes of a %d-byte body", len(b)-frameHeader, n)}
	}
	body := b[frameHeader : frameHeader+n]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(b[4:]); got != want {
		return Record{}, 0, &frameError{reasonCRC, fmt.Sprintf("CRC-32C %08x, header says %08x", got, want)}
	}
	r, err := decodeBody(body)
	if err != nil {
		return Record{}, 0, err
	}
	return r, frameHeader + n, nil
}

// decodeBody parses a body whose checksum has been verified.
func decodeBody(body []byte) (Record, error) {
	bad := func(what string) (Record, error) {
		return Record{}, &frameError{reasonBody, what}
	}
	if body[0] != bodyVersion {
		return bad(fmt.Sprintf("version %d", body[0]))
	}
	p := body[1:]
	seq, k := binary.Uvarint(p)
	if k <= 0 {
		return bad("seq")
	}
	p = p[k:]
	str := func(max int) (string, bool) {
		l, k := binary.Uvarint(p)
		if k <= 0 || l > uint64(max) || l > uint64(len(p)-k) {
			return "", false
		}
		s := string(p[k : k+int(l)])
		p = p[k+int(l):]
		return s, true
	}
	sensor, ok := str(MaxSensor)
	if !ok {
		return bad("sensor")
	}
	topic, ok := str(MaxTopic)
	if !ok {
		return bad("topic")
	}
	if len(p) > MaxPayload {
		return bad("payload too long")
	}
	return Record{Topic: topic, Payload: p, Sensor: sensor, Seq: seq}, nil
}
