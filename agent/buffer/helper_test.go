package buffer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgeagent/agent/internal/testexec"
)

// Child processes are the test binary run again with these variables set.
const (
	helperEnv    = "BUFFER_TEST_HELPER" // what the child does
	helperDirEnv = "BUFFER_TEST_DIR"    // the log directory
)

// TestHelperProcess is not a test: other tests run the test binary again
// with helperEnv set, to act in another process (killed at a random
// moment, or inside a mount namespace).
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	switch mode := os.Getenv(helperEnv); mode {
	case "":
		t.Skip("only runs as a child of other tests")
	case "append-loop":
		appendLoop(t, dir)
	case "readonly":
		// Make dir read-only in this mount namespace only.
		if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
			t.Fatalf("bind mount: %v", err)
		}
		if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
			t.Fatalf("remount read-only: %v", err)
		}
		readOnlyBody(t, dir, func() {
			if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND, ""); err != nil {
				t.Fatalf("remount read-write: %v", err)
			}
		})
	case "enospc":
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
			t.Fatalf("mount tmpfs: %v", err)
		}
		diskFullBody(t, dir)
	default:
		t.Fatalf("unknown %s=%q", helperEnv, mode)
	}
}

// crashRecord is what the crash child appends: its seq says which it is.
func crashRecord(seq uint64) Record {
	return Record{Topic: "edge/b/telemetry", Sensor: "crash", Seq: seq,
		Payload: fmt.Appendf(nil, `{"seq":%d,"v":%s}`, seq, strings.Repeat("7", int(seq%150)))}
}

// appendLoop appends until killed, acking with a lag from another
// goroutine, and prints "appended <offset>" every 200 records once that
// record was appended.
func appendLoop(t *testing.T, dir string) {
	l, err := Open(Options{Dir: dir, SegmentBytes: 16 << 10, MaxBytes: 64 << 20, Sync: SyncBatch, BatchEvery: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("first %d\n", l.Report().NextOffset)
	var head atomic.Uint64 // last offset appended
	go func() {
		next := l.FirstUnacked()
		for {
			es, err := l.Read(next, 100)
			if err != nil {
				return
			}
			if len(es) == 0 {
				<-l.Notify()
				continue
			}
			for _, e := range es {
				// Keep the newest 1000 unacked, like a sender behind.
				for e.Offset+1000 > head.Load() {
					<-l.Notify()
				}
				// Ack in pairs, out of order: 2 then 1, 4 then 3…
				if e.Offset%2 == 1 {
					l.Ack(e.Offset + 1)
					l.Ack(e.Offset)
				}
				next = e.Offset + 1
			}
		}
	}()
	seq := l.LastSeq("crash")
	for {
		seq++
		off, err := l.Append(crashRecord(seq))
		if err != nil {
			t.Fatal(err)
		}
		head.Store(off)
		if off%200 == 0 {
			fmt.Printf("appended %d\n", off)
		}
	}
}

// helperCommand returns a command running the test binary as a helper
// doing mode on dir, through wrap (e.g. unshare) when given.
func helperCommand(t *testing.T, ctx context.Context, mode, dir string, wrap ...string) *exec.Cmd {
	t.Helper()
	cmd, err := testexec.Helper(ctx, "TestHelperProcess", []string{helperEnv + "=" + mode, helperDirEnv + "=" + dir}, wrap...)
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

// TestCrash kills an appending child with SIGKILL at random moments and
// checks what a reopen finds: every record from the first unacked one is
// intact and consecutive, nothing reported appended is missing, and
// offsets and seqs never go back.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	var lastReported, lastSeq uint64
	for round := 0; round < 5; round++ {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := helperCommand(t, ctx, "append-loop", dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 1 + r.IntN(15)
		sc := bufio.NewScanner(out)
		seen := 0
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 {
				continue
			}
			n, _ := strconv.ParseUint(f[1], 10, 64)
			switch f[0] {
			case "first":
				if n <= lastReported {
					t.Fatalf("round %d: child starts at offset %d, at or before %d appended earlier", round, n, lastReported)
				}
			case "appended":
				lastReported = n
				seen++
			}
			if seen == killAfter {
				break
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		cancel()
		if seen < killAfter {
			t.Fatalf("round %d: child stopped early: %s", round, stderr.String())
		}

		l := openT(t, Options{Dir: dir, SegmentBytes: 16 << 10, MaxBytes: 64 << 20})
		rep := l.Report()
		es := readAll(t, l, 0)
		if len(es) == 0 {
			t.Fatalf("round %d: nothing unacked after the kill; report %+v", round, rep)
		}
		if es[0].Offset != l.FirstUnacked() {
			t.Fatalf("round %d: first entry %d, FirstUnacked %d", round, es[0].Offset, l.FirstUnacked())
		}
		for i, e := range es {
			if i > 0 && (e.Offset != es[i-1].Offset+1 || e.Seq != es[i-1].Seq+1) {
				// Acked out of order in pairs: a persisted ack of the
				// second of a pair may leave a hole of one.
				if !(e.Offset == es[i-1].Offset+2 && e.Seq == es[i-1].Seq+2) {
					t.Fatalf("round %d: gap between offsets %d and %d (report %+v)", round, es[i-1].Offset, e.Offset, rep)
				}
			}
			want := crashRecord(e.Seq)
			if e.Topic != want.Topic || !bytes.Equal(e.Payload, want.Payload) {
				t.Fatalf("round %d: offset %d damaged: %q", round, e.Offset, e.Payload)
			}
		}
		last := es[len(es)-1]
		if last.Offset < lastReported {
			t.Fatalf("round %d: last record %d, but %d was appended before the kill", round, last.Offset, lastReported)
		}
		if last.Seq <= lastSeq || l.LastSeq("crash") != last.Seq {
			t.Fatalf("round %d: last seq %d (LastSeq %d), previous round ended at %d", round, last.Seq, l.LastSeq("crash"), lastSeq)
		}
		lastSeq, lastReported = last.Seq, last.Offset
		t.Logf("round %d: killed after %d, reopened: %d unacked from %d to %d, %d segments, aside %v, lost %d",
			round, killAfter*200, len(es), es[0].Offset, last.Offset, rep.Segments, rep.Aside, rep.Lost)
		mustClose(t, l)
	}
}
