package buffer

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestRoundTripAcrossSegmentsAndReopen(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 1 << 10}
	l := openT(t, o)
	appendRange(t, l, 1, 300)
	checkEntries(t, readAll(t, l, 1), 1, 300)
	if n := len(segFiles(t, dir)); n < 10 {
		t.Fatalf("%d segment files, want several", n)
	}
	mustClose(t, l)

	l = openT(t, o)
	rep := l.Report()
	if rep.Records != 300 || rep.FirstUnacked != 1 || rep.NextOffset != 301 || rep.Unacked != 300 || len(rep.Aside) != 0 {
		t.Fatalf("Report = %+v, want 300 records, first unacked 1, next 301, nothing aside", rep)
	}
	checkEntries(t, readAll(t, l, 0), 1, 300)
	appendRange(t, l, 301, 320)
	checkEntries(t, readAll(t, l, 290), 290, 320)
	// Random starting points go through the sparse index.
	for _, from := range []uint64{1, 63, 64, 65, 129, 200, 319, 320} {
		es, err := l.Read(from, 3)
		if err != nil || len(es) == 0 {
			t.Fatalf("Read(%d) = %d entries, %v", from, len(es), err)
		}
		checkEntry(t, es[0], from)
	}
	if es, _ := l.Read(321, 10); len(es) != 0 {
		t.Fatalf("Read past the end = %d entries, want none", len(es))
	}
	if st := l.Stats(); st.Depth != 320 || st.Memory || st.Dropped != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestAcksOutOfOrderAndRepeated(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 1 << 10, Sync: SyncAlways}
	l := openT(t, o)
	appendRange(t, l, 1, 10)
	for _, off := range []uint64{3, 1, 1, 5, 2, 3, 0, 99, 9} {
		l.Ack(off)
	}
	if got := l.FirstUnacked(); got != 4 {
		t.Fatalf("FirstUnacked = %d, want 4", got)
	}
	es := readAll(t, l, 1)
	var offs []uint64
	for _, e := range es {
		offs = append(offs, e.Offset)
	}
	if want := []uint64{4, 6, 7, 8, 10}; !equalU(offs, want) {
		t.Fatalf("unacked offsets %v, want %v", offs, want)
	}
	if d := l.Stats().Depth; d != 5 {
		t.Fatalf("Depth = %d, want 5", d)
	}
	l.Ack(4)
	if got := l.FirstUnacked(); got != 6 {
		t.Fatalf("FirstUnacked = %d, want 6", got)
	}
	mustClose(t, l)

	l = openT(t, o)
	// The prefix and the out-of-order ack of 9 were persisted.
	if got := l.FirstUnacked(); got != 6 {
		t.Fatalf("after reopen FirstUnacked = %d, want 6", got)
	}
	checkOffsets(t, readAll(t, l, 0), []uint64{6, 7, 8, 10})
}

func equalU(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAckedSegmentsDeleted(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, MaxBytes: 1 << 20, SegmentBytes: 1 << 10, Sync: SyncAlways}
	l := openT(t, o)
	appendRange(t, l, 1, 100)
	before := segFiles(t, dir)
	// Ack the first 50 in reverse: nothing moves until 1 arrives.
	for off := uint64(50); off >= 2; off-- {
		l.Ack(off)
	}
	if got := segFiles(t, dir); len(got) != len(before) {
		t.Fatalf("segments deleted before the prefix was acked: %v -> %v", before, got)
	}
	l.Ack(1)
	after := segFiles(t, dir)
	if len(after) >= len(before) {
		t.Fatalf("no segment deleted: %v", after)
	}
	// The first remaining segment holds offset 51 or starts right after.
	if after[0] > segName(51) {
		t.Fatalf("first remaining segment %s is past offset 51", after[0])
	}
	checkEntries(t, readAll(t, l, 0), 51, 100)
	for off := uint64(51); off <= 100; off++ {
		l.Ack(off)
	}
	mustClose(t, l)
	if got := segFiles(t, dir); len(got) != 0 {
		t.Fatalf("segments left after everything was acked and closed: %v", got)
	}
}

func TestLastSeqAcrossReopenAfterEverythingDeleted(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, SegmentBytes: 1 << 10, MaxBytes: 1 << 20}
	l := openT(t, o)
	seqs := map[string]uint64{"a": 41, "b": 7, "c": 1 << 40}
	var off uint64
	for s, seq := range seqs {
		for k := uint64(0); k <= seq && k < 20; k++ {
			var err error
			off, err = l.Append(Record{Topic: "t/" + s, Sensor: s, Seq: seq - k, Payload: []byte("x")})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := uint64(1); i <= off; i++ {
		l.Ack(i)
	}
	mustClose(t, l)
	if got := segFiles(t, dir); len(got) != 0 {
		t.Fatalf("segments left: %v", got)
	}
	l = openT(t, o)
	for s, want := range seqs {
		if got := l.LastSeq(s); got != want {
			t.Errorf("LastSeq(%q) = %d, want %d", s, got, want)
		}
	}
	if got := l.LastSeq("never"); got != 0 {
		t.Errorf("LastSeq(never) = %d, want 0", got)
	}
	next, err := l.Append(rec(1))
	if err != nil || next != off+1 {
		t.Fatalf("Append after reopen = %d, %v; want offset %d (no reuse)", next, err, off+1)
	}
	if got := l.FirstUnacked(); got != off+1 {
		t.Fatalf("FirstUnacked = %d, want %d", got, off+1)
	}
}

func TestReject(t *testing.T) {
	dir := t.TempDir()
	var lb logBuf
	l := openT(t, Options{Dir: dir, Logger: lb.logger()})
	appendRange(t, l, 1, 3)
	l.Reject(2, "0x97 quota exceeded")
	l.Reject(2, "again") // repeated: ignored
	if st := l.Stats(); st.Rejected != 1 || st.Depth != 2 {
		t.Fatalf("Stats = %+v, want 1 rejected, depth 2", st)
	}
	es := readAll(t, l, 1)
	if len(es) != 2 || es[0].Offset != 1 || es[1].Offset != 3 {
		t.Fatalf("Read after Reject = %s", span2(es))
	}
	l.Ack(1)
	l.Ack(3)
	if got := l.FirstUnacked(); got != 4 {
		t.Fatalf("FirstUnacked = %d, want 4", got)
	}
	f, err := os.Open(filepath.Join(dir, "aside", "rejected.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var lines []map[string]any
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("rejected.jsonl line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 1 {
		t.Fatalf("rejected.jsonl has %d lines, want 1", len(lines))
	}
	m := lines[0]
	if m["offset"] != 2.0 || m["why"] != "0x97 quota exceeded" || m["topic"] != rec(2).Topic || m["payload"] != string(rec(2).Payload) {
		t.Fatalf("rejected line = %v", m)
	}
	if !strings.Contains(lb.String(), "refused") {
		t.Fatalf("no log line for the rejection:\n%s", lb.String())
	}
}

func TestRejectedFileBounded(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Options{Dir: dir, SegmentBytes: 64 << 10, Sync: SyncNever})
	big := make([]byte, 40<<10)
	for i := range big {
		big[i] = 'a'
	}
	for i := 0; i < 40; i++ {
		off, err := l.Append(Record{Topic: "t", Payload: big})
		if err != nil {
			t.Fatal(err)
		}
		l.Reject(off, "0x99")
	}
	cur := fileSize(t, filepath.Join(dir, "aside", rejectsName))
	prev := fileSize(t, filepath.Join(dir, "aside", rejectsName+".1"))
	if cur > rejectsMax || prev > rejectsMax {
		t.Fatalf("rejected files %d and %d bytes, want each <= %d", cur, prev, rejectsMax)
	}
}

func TestMaxBytesDropsOldest(t *testing.T) {
	dir := t.TempDir()
	var lb logBuf
	o := Options{Dir: dir, MaxBytes: 8 << 10, SegmentBytes: 1 << 10, Logger: lb.logger()}
	l := openT(t, o)
	appendRange(t, l, 1, 5)
	for off := uint64(1); off <= 5; off++ {
		l.Ack(off) // acked records are not counted as dropped
	}
	appendRange(t, l, 6, 400)
	st := l.Stats()
	if st.Bytes > o.MaxBytes {
		t.Fatalf("Bytes = %d, want <= MaxBytes %d", st.Bytes, o.MaxBytes)
	}
	es := readAll(t, l, 0)
	if len(es) == 0 || es[len(es)-1].Offset != 400 {
		t.Fatalf("kept %s, want a tail ending at 400", span2(es))
	}
	checkEntries(t, es, es[0].Offset, 400)
	if got, want := st.Dropped, uint64(400-5-len(es)); got != want {
		t.Fatalf("Dropped = %d, want %d (400 appended, 5 acked, %d kept)", got, want, len(es))
	}
	if st.Depth != len(es) {
		t.Fatalf("Depth = %d, want %d", st.Depth, len(es))
	}
	if !strings.Contains(lb.String(), "level=WARN") || !strings.Contains(lb.String(), "dropped the oldest segment") {
		t.Fatalf("no Warn about dropping:\n%s", lb.String())
	}
	if got := l.FirstUnacked(); got != es[0].Offset {
		t.Fatalf("FirstUnacked = %d, want %d", got, es[0].Offset)
	}
	mustClose(t, l)
	var total int64
	for _, n := range segFiles(t, dir) {
		total += fileSize(t, filepath.Join(dir, n))
	}
	if total > o.MaxBytes {
		t.Fatalf("%d bytes of segments on disk, want <= %d", total, o.MaxBytes)
	}
	l = openT(t, o)
	checkEntries(t, readAll(t, l, 0), es[0].Offset, 400)
}

func TestMemoryOnly(t *testing.T) {
	l := openT(t, Options{MaxBytes: 4 << 10, SegmentBytes: 512})
	appendRange(t, l, 1, 200)
	st := l.Stats()
	if !st.Memory || st.Bytes > 4<<10 || st.Dropped == 0 {
		t.Fatalf("Stats = %+v, want memory, bounded, some dropped", st)
	}
	es := readAll(t, l, 0)
	checkEntries(t, es, es[0].Offset, 200)
	for _, e := range es {
		l.Ack(e.Offset)
	}
	if st := l.Stats(); st.Depth != 0 || st.Bytes > 1<<10 {
		t.Fatalf("after acking all: %+v", st)
	}
	mustClose(t, l)
}

func TestInvalid(t *testing.T) {
	l := openT(t, Options{Dir: t.TempDir(), MaxBytes: 4 << 20})
	for _, r := range []Record{
		{Topic: "", Payload: []byte("x")},
		{Topic: "a/+/b"},
		{Topic: "a/#"},
		{Topic: "a\x00b"},
		{Topic: "\xff"},
		{Topic: strings.Repeat("t", MaxTopic+1)},
		{Topic: "t", Sensor: strings.Repeat("s", MaxSensor+1)},
		{Topic: "t", Payload: make([]byte, MaxPayload+1)},
	} {
		if _, err := l.Append(r); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("Append(topic %.20q, %d-byte sensor, %d-byte payload) = %v, want ErrInvalidRecord", r.Topic, len(r.Sensor), len(r.Payload), err)
		}
	}
	if off, err := l.Append(Record{Topic: "t", Payload: make([]byte, MaxPayload)}); err != nil || off != 1 {
		t.Fatalf("Append of a 1 MiB payload = %d, %v", off, err)
	}
	small := openT(t, Options{MaxBytes: 1 << 10, SegmentBytes: 256})
	if _, err := small.Append(Record{Topic: "t", Payload: make([]byte, 2<<10)}); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("record larger than MaxBytes: %v, want ErrInvalidRecord", err)
	}

	for _, o := range []Options{
		{MaxBytes: -1},
		{SegmentBytes: -1},
		{MaxBytes: 1 << 20, SegmentBytes: 1 << 20},
		{Sync: "sometimes"},
		{BatchEvery: -1},
		{MaxBytes: 4},
	} {
		if _, err := Open(o); err == nil {
			t.Errorf("Open(%+v) succeeded, want an error", o)
		}
	}
	mustClose(t, l)
	if _, err := l.Append(rec(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	if _, err := l.Read(1, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close = %v, want ErrClosed", err)
	}
}

func TestNotify(t *testing.T) {
	l := openT(t, Options{})
	select {
	case <-l.Notify():
		t.Fatal("notified before any Append")
	default:
	}
	appendRange(t, l, 1, 3)
	<-l.Notify() // coalesced: one wake-up is waiting
	select {
	case <-l.Notify():
		t.Fatal("three appends left more than one wake-up")
	default:
	}
}

func TestStateFileUnparsable(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, SegmentBytes: 1 << 10, MaxBytes: 1 << 20, Sync: SyncAlways}
	l := openT(t, o)
	appendRange(t, l, 1, 100)
	for off := uint64(1); off <= 40; off++ {
		l.Ack(off)
	}
	mustClose(t, l)
	first := segFiles(t, dir)[0]
	if err := os.WriteFile(filepath.Join(dir, stateName), []byte("{\"acked\": 4"), 0o600); err != nil {
		t.Fatal(err)
	}
	l = openT(t, o)
	rep := l.Report()
	if rep.StateError == "" {
		t.Fatalf("Report = %+v, want a StateError", rep)
	}
	// Resend from the first record on disk (duplicates allowed).
	if got := l.FirstUnacked(); segName(got) != first {
		t.Fatalf("FirstUnacked = %d, want the first record on disk (%s)", got, first)
	}
	es := readAll(t, l, 0)
	checkEntries(t, es, es[0].Offset, 100)
	if got := l.LastSeq("bme280"); got != 100 {
		t.Fatalf("LastSeq = %d, want 100 (from the records)", got)
	}
	if off, _ := l.Append(rec(101)); off != 101 {
		t.Fatalf("next offset %d, want 101", off)
	}
}

// TestConcurrent runs one appender, one reader/acker and a Stats caller.
func TestConcurrent(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncBatch, SyncNever, SyncAlways} {
		t.Run(string(policy), func(t *testing.T) {
			const n = 2000
			o := Options{Dir: t.TempDir(), SegmentBytes: 4 << 10, MaxBytes: 64 << 20, Sync: policy}
			if policy == SyncAlways {
				o.MaxBytes = 1 << 20
			}
			l := openT(t, o)
			var wg sync.WaitGroup
			stop := make(chan struct{})
			wg.Add(2)
			go func() {
				defer wg.Done()
				for i := uint64(1); i <= n; i++ {
					if _, err := l.Append(rec(i)); err != nil {
						t.Error(err)
						return
					}
				}
			}()
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
						l.Stats()
					}
				}
			}()
			next := uint64(1)
			for next <= n {
				es, err := l.Read(next, 50)
				if err != nil {
					t.Fatal(err)
				}
				if len(es) == 0 {
					<-l.Notify()
					continue
				}
				for _, e := range es {
					checkEntry(t, e, next)
					next++
				}
				// Ack in reverse within the batch: out of order.
				for k := len(es) - 1; k >= 0; k-- {
					l.Ack(es[k].Offset)
				}
			}
			close(stop)
			wg.Wait()
			if st := l.Stats(); st.Depth != 0 || st.Dropped != 0 {
				t.Fatalf("Stats = %+v", st)
			}
			mustClose(t, l)
		})
	}
}

func TestDoneSet(t *testing.T) {
	var d doneSet
	add := func(lo, hi, want uint64) {
		t.Helper()
		if got := d.add(lo, hi); got != want {
			t.Fatalf("add(%d, %d) = %d, want %d (set %+v)", lo, hi, got, want, d)
		}
	}
	add(5, 5, 1)
	add(7, 9, 3)
	add(8, 12, 3)
	add(5, 6, 1)
	if d.mark != 0 || len(d.spans) != 1 || d.spans[0] != (span{5, 12}) || d.count != 8 {
		t.Fatalf("set = %+v", d)
	}
	add(1, 4, 4)
	if d.mark != 12 || len(d.spans) != 0 || d.count != 0 {
		t.Fatalf("set = %+v, want mark 12 and nothing else", d)
	}
	add(3, 12, 0)
	add(20, 30, 11)
	if !d.contains(12) || d.contains(13) || !d.contains(25) || d.contains(31) {
		t.Fatalf("contains wrong for %+v", d)
	}
	if got := d.countIn(10, 25); got != 3+6 {
		t.Fatalf("countIn(10, 25) = %d, want 9", got)
	}
}

func TestCloseStopsGoroutines(t *testing.T) {
	opts := goleak.IgnoreCurrent()
	for _, policy := range []SyncPolicy{SyncBatch, SyncAlways, SyncNever} {
		l, err := Open(Options{Dir: t.TempDir(), Sync: policy})
		if err != nil {
			t.Fatal(err)
		}
		appendRange(t, l, 1, 10)
		l.Ack(1)
		mustClose(t, l)
		mustClose(t, l) // twice is fine
	}
	goleak.VerifyNone(t, opts)
}
