package buffer

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeagent/agent/internal/testlog"
)

// rec is record i of a test: its payload and seq say which it is.
func rec(i uint64) Record {
	return Record{
		Topic:   "edge/board1/telemetry",
		Payload: fmt.Appendf(nil, `{"i":%d,"t":21.5,"pad":"%s"}`, i, strings.Repeat("x", int(i%7)*5)),
		Sensor:  "bme280",
		Seq:     i,
	}
}

func openT(t testing.TB, o Options) *Log {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	l, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func appendRange(t testing.TB, l *Log, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		off, err := l.Append(rec(i))
		if err != nil {
			t.Fatalf("Append(%d): %v", i, err)
		}
		if off != i {
			t.Fatalf("Append(%d) = offset %d, want %d", i, off, i)
		}
	}
}

// readAll reads every unacked entry from `from` on, in calls of 7.
func readAll(t testing.TB, l *Log, from uint64) []Entry {
	t.Helper()
	var all []Entry
	for {
		es, err := l.Read(from, 7)
		if err != nil {
			t.Fatalf("Read(%d): %v", from, err)
		}
		if len(es) == 0 {
			return all
		}
		for _, e := range es {
			if e.Offset < from {
				t.Fatalf("Read(%d) returned offset %d", from, e.Offset)
			}
			from = e.Offset + 1
		}
		all = append(all, es...)
	}
}

// checkEntries says whether es are exactly records lo..hi.
func checkEntries(t testing.TB, es []Entry, lo, hi uint64) {
	t.Helper()
	if uint64(len(es)) != hi-lo+1 {
		t.Fatalf("got %d entries (%s), want offsets %d..%d", len(es), span2(es), lo, hi)
	}
	for k, e := range es {
		checkEntry(t, e, lo+uint64(k))
	}
}

func checkEntry(t testing.TB, e Entry, off uint64) {
	t.Helper()
	want := rec(off)
	if e.Offset != off || e.Topic != want.Topic || e.Sensor != want.Sensor || e.Seq != want.Seq || !bytes.Equal(e.Payload, want.Payload) {
		t.Fatalf("entry %d = {%d %q %q %d %q}, want record %d", off, e.Offset, e.Topic, e.Sensor, e.Seq, e.Payload, off)
	}
}

func span2(es []Entry) string {
	if len(es) == 0 {
		return "none"
	}
	return fmt.Sprintf("%d..%d", es[0].Offset, es[len(es)-1].Offset)
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	return m
}

// logBuf collects log output for assertions.
type logBuf struct{ testlog.Buffer }

func (b *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func mustClose(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
