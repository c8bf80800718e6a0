package hostsfile

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestUpdate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts")

	// A missing file is empty.
	changed, conflicts, err := Update(path, brokerPin)
	if err != nil || !changed || conflicts != nil {
		t.Fatalf("Update(missing file) = %v, %v, %v; want true, none, nil", changed, conflicts, err)
	}
	want := beginMarker + "\n192.0.2.10\tbroker.test\n" + endMarker + "\n"
	if got, _ := os.ReadFile(path); string(got) != want {
		t.Fatalf("content = %q, want %q", got, want)
	}
	if fi, _ := os.Stat(path); fi.Mode() != 0o644 {
		t.Errorf("new file mode = %v, want 0644", fi.Mode())
	}

	// Someone adds lines around the block, one of them mapping the name.
	edited := "127.0.0.1 localhost\n" + want + "10.0.0.99 broker.test\n"
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)

	// The same pin again: no write (same inode, so no rename happened).
	changed, conflicts, err = Update(path, brokerPin)
	if err != nil || changed {
		t.Fatalf("Update(same pin) = %v, %v; want false, nil", changed, err)
	}
	wantConflicts := []Conflict{{Line: 5, Text: "10.0.0.99 broker.test"}}
	if !reflect.DeepEqual(conflicts, wantConflicts) {
		t.Errorf("conflicts = %+v, want %+v", conflicts, wantConflicts)
	}
	if after, _ := os.Stat(path); !os.SameFile(before, after) {
		t.Errorf("file replaced although nothing changed")
	}

	// A new address: rewritten; conflict line numbers follow the new file.
	moved := []Pin{{Name: "broker.test", Addrs: addrs("192.0.2.11", "2001:db8::11")}}
	changed, conflicts, err = Update(path, moved)
	if err != nil || !changed {
		t.Fatalf("Update(moved) = %v, %v; want true, nil", changed, err)
	}
	wantConflicts = []Conflict{{Line: 6, Text: "10.0.0.99 broker.test"}}
	if !reflect.DeepEqual(conflicts, wantConflicts) {
		t.Errorf("conflicts = %+v, want %+v", conflicts, wantConflicts)
	}
	want = "127.0.0.1 localhost\n" + beginMarker + "\n192.0.2.11\tbroker.test\n2001:db8::11\tbroker.test\n" + endMarker + "\n10.0.0.99 broker.test\n"
	if got, _ := os.ReadFile(path); string(got) != want {
		t.Errorf("content = %q, want %q", got, want)
	}

	// No pins: the block goes, the rest stays.
	changed, conflicts, err = Update(path, nil)
	if err != nil || !changed || conflicts != nil {
		t.Fatalf("Update(nil) = %v, %v, %v; want true, none, nil", changed, conflicts, err)
	}
	if got, _ := os.ReadFile(path); string(got) != "127.0.0.1 localhost\n10.0.0.99 broker.test\n" {
		t.Errorf("content after removal = %q", got)
	}
	if got := dirNames(t, dir); got != "hosts hosts"+LockSuffix {
		t.Errorf("directory holds %q, want the file and its lock file", got)
	}
}

func TestUpdateRefusals(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts")
	broken := "127.0.0.1 localhost\n# BEGIN agent\n10.0.0.1 broker.test\n"
	if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := Update(path, []Pin{{Name: "broker.test\n10.0.0.1 evil", Addrs: addrs("192.0.2.10")}})
	if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "hostsfile: update "+path+": ") {
		t.Errorf("Update(bad name): err = %v, want ErrInvalid naming the path", err)
	}
	if got := dirNames(t, dir); got != "hosts" {
		t.Errorf("a refused pin left %q, want no lock file", got)
	}
	for _, pins := range [][]Pin{brokerPin, nil} {
		_, _, err = Update(path, pins)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("Update(broken block, %d pins): err = %v, want ErrMalformed naming the path and line 2", len(pins), err)
		}
	}
	if got, _ := os.ReadFile(path); string(got) != broken {
		t.Errorf("refused Update changed the file to %q", got)
	}
}

// TestUpdateConcurrent: goroutines updating one file with their own pins
// never fail and leave one whole block.
func TestUpdateConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(path, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pins := []Pin{{Name: "broker.test", Addrs: []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(w + 1)})}}}
			for range rounds {
				if _, _, err := Update(path, pins); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ok := false
	for w := range workers {
		ok = ok || string(got) == fmt.Sprintf("127.0.0.1 localhost\n%s\n192.0.2.%d\tbroker.test\n%s\n", beginMarker, w+1, endMarker)
	}
	if !ok {
		t.Errorf("final content is not one worker's: %q", got)
	}
}

// TestUpdateWaitsForLockFile: another process holding the flock on the lock
// file holds Update off until it lets go.
func TestUpdateWaitsForLockFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	lock, err := os.OpenFile(path+LockSuffix, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		_, _, err := Update(path, brokerPin)
		done <- err
	}()
	// A negative check needs some time to pass; it can only miss a bug,
	// never fail a correct Update.
	select {
	case err := <-done:
		t.Fatalf("Update finished (err=%v) while another holder had the lock", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file written while the lock was held elsewhere: %v", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Update still waiting 10 s after the lock was released")
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("file not written after the lock was released: %v", err)
	}
}
