package buffer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/agent/internal/testexec"
)

// requireMountNamespace skips unless this process may create a mount
// namespace and mount in it.
func requireMountNamespace(t *testing.T) {
	t.Helper()
	if why := testexec.MountNamespace(`mount -t tmpfs -o size=64k tmpfs "$0"`); why != "" {
		t.Skip("skipped: " + why)
	}
}

// runInNamespace runs the helper mode in a child in its own mount
// namespace and fails with its output if it fails.
func runInNamespace(t *testing.T, mode, dir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := helperCommand(t, ctx, mode, dir, "unshare", "-m", "--propagation", "private").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestHelperProcess")) {
		t.Fatalf("child %s: %v\n%s", mode, err, out)
	}
	t.Logf("child %s:\n%s", mode, lastLines(out, 6))
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestReadOnlyDir: a directory the log cannot write to makes a
// memory-mode log that still drains what is on disk, and goes back to
// the disk when it is writable again.
func TestReadOnlyDir(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Options{Dir: dir, SegmentBytes: 1 << 10, MaxBytes: 1 << 20})
	appendRange(t, l, 1, 20)
	mustClose(t, l)

	if os.Geteuid() == 0 {
		// chmod means nothing to root: use a read-only bind mount in a
		// private mount namespace.
		requireMountNamespace(t)
		runInNamespace(t, "readonly", dir)
		return
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	readOnlyBody(t, dir, func() {
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	})
}

// readOnlyBody expects dir to hold records 1..20 and to be read-only
// until makeWritable is called.
func readOnlyBody(t *testing.T, dir string, makeWritable func()) {
	clock := newClock()
	var lb logBuf
	o := Options{Dir: dir, SegmentBytes: 1 << 10, MaxBytes: 1 << 20, Now: clock.Now, Logger: lb.logger()}
	l := openT(t, o)
	st, rep := l.Stats(), l.Report()
	if !st.Memory || st.LastError == "" || !rep.Memory || rep.Records != 20 {
		t.Fatalf("Stats = %+v, Report = %+v; want memory mode with an error, 20 records found", st, rep)
	}
	if !strings.Contains(lb.String(), "level=ERROR") {
		t.Fatalf("no Error logged:\n%s", lb.String())
	}
	t.Logf("LastError: %s", st.LastError)
	appendRange(t, l, 21, 30) // offsets continue
	checkEntries(t, readAll(t, l, 1), 1, 30)
	for off := uint64(1); off <= 5; off++ {
		l.Ack(off)
	}

	clock.Advance(10 * time.Second)
	makeWritable()
	appendRange(t, l, 31, 31)
	if !l.Stats().Memory {
		t.Fatal("went back to disk before RetryEvery had passed")
	}
	clock.Advance(DefaultRetryEvery)
	appendRange(t, l, 32, 32)
	if st := l.Stats(); st.Memory {
		t.Fatalf("still in memory after the retry: %+v\n%s", st, lb.String())
	}
	if !strings.Contains(lb.String(), "back to disk") {
		t.Fatalf("no log line about going back to disk:\n%s", lb.String())
	}
	appendRange(t, l, 33, 40)
	checkEntries(t, readAll(t, l, 0), 6, 40)
	mustClose(t, l)

	o.Logger = nil
	l = openT(t, o)
	if rep := l.Report(); rep.Memory || rep.FirstUnacked != 6 || rep.Lost != 0 {
		t.Fatalf("reopen: %+v", rep)
	}
	checkEntries(t, readAll(t, l, 0), 6, 40)
}

func TestDiskFull(t *testing.T) {
	requireMountNamespace(t)
	runInNamespace(t, "enospc", t.TempDir())
}

func fullRecord(i uint64) Record {
	return Record{Topic: "edge/b/telemetry", Sensor: "s", Seq: i, Payload: fmt.Appendf(nil, "%d:%s", i, strings.Repeat("p", 1000))}
}

// diskFullBody runs on a 256 KiB tmpfs at dir: appends until the disk is
// full, then checks that nothing was lost and that the log returns to
// the disk once acks free space.
func diskFullBody(t *testing.T, dir string) {
	clock := newClock()
	var lb logBuf
	o := Options{Dir: dir, SegmentBytes: 16 << 10, MaxBytes: 8 << 20, Now: clock.Now, Logger: lb.logger()}
	l := openT(t, o)
	var n, switchedAt uint64
	for n = 1; n <= 1000; n++ {
		off, err := l.Append(fullRecord(n))
		if err != nil || off != n {
			t.Fatalf("Append(%d) = %d, %v", n, off, err)
		}
		if switchedAt == 0 && l.Stats().Memory {
			switchedAt = n
		}
		if switchedAt != 0 && n == switchedAt+40 {
			break
		}
	}
	if switchedAt == 0 {
		t.Fatalf("the disk never filled up after %d records", n)
	}
	st := l.Stats()
	if !strings.Contains(st.LastError, "no space left on device") || !strings.Contains(lb.String(), "level=ERROR") {
		t.Fatalf("Stats = %+v; log:\n%s", st, lb.String())
	}
	t.Logf("disk full at record %d: %s", switchedAt, st.LastError)
	es := readAll(t, l, 0)
	if uint64(len(es)) != n {
		t.Fatalf("read %d records, appended %d", len(es), n)
	}
	for i, e := range es {
		if want := fullRecord(uint64(i + 1)); e.Offset != uint64(i+1) || !bytes.Equal(e.Payload, want.Payload) {
			t.Fatalf("record %d: offset %d, payload %.20q", i+1, e.Offset, e.Payload)
		}
	}
	// Deliver what is on disk; the next retry finds room again.
	for off := uint64(1); off < switchedAt; off++ {
		l.Ack(off)
	}
	clock.Advance(DefaultRetryEvery)
	if off, err := l.Append(fullRecord(n + 1)); err != nil || off != n+1 {
		t.Fatalf("Append = %d, %v", off, err)
	}
	if st := l.Stats(); st.Memory {
		t.Fatalf("still in memory after acks freed the disk: %+v\n%s", st, lb.String())
	}
	if !strings.Contains(lb.String(), "back to disk") {
		t.Fatalf("no log line about going back to disk:\n%s", lb.String())
	}
	mustClose(t, l)
	// The records that were only in memory are on disk now.
	o.Logger = nil
	l = openT(t, o)
	es = readAll(t, l, 0)
	if len(es) == 0 || es[0].Offset != switchedAt || es[len(es)-1].Offset != n+1 || uint64(len(es)) != n+2-switchedAt {
		t.Fatalf("after reopen: %s (%d), want %d..%d", span2(es), len(es), switchedAt, n+1)
	}
}
