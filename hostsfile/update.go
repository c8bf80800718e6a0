package hostsfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LockSuffix names the lock file beside the hosts file (/etc/hosts.agent.lock)
// that serialises Updates across processes. It stays after use: removing a
// lock file races with the next locker.
const LockSuffix = ".agent.lock"

// LockWait bounds how long Update waits for another process's lock.
const LockWait = 5 * time.Second

// pathMutexes holds one mutex per hosts file path (by absolute path); a
// process updates one or two files, so it never grows beyond that. It is
// needed besides the flock because the flock's wait would block a thread per
// waiting goroutine and because Update's callers need not share a value.
var pathMutexes sync.Map // string → *sync.Mutex

func pathMutex(path string) *sync.Mutex {
	key, err := filepath.Abs(path)
	if err != nil {
		key = filepath.Clean(path)
	}
	mu, _ := pathMutexes.LoadOrStore(key, new(sync.Mutex))
	return mu.(*sync.Mutex)
}

// Update makes path's agent block hold pins: it reads path (a missing file is
// empty), Rewrites it, and Writes only if the content changed, so a pin that
// did not move costs no flash write. It returns whether it wrote, and the
// lines outside the block that map a pinned name, numbered as in the file now
// on disk. Empty pins remove the block.
//
// Updates of one path are serialised within the process by a mutex and across
// processes by an flock on path+LockSuffix; when that file cannot be created
// (a read-only /etc around a bind-mounted hosts file) the flock is on path
// itself, whose inode the in-place write keeps. The flock is waited for
// without a limit.
func Update(path string, pins []Pin) (changed bool, conflicts []Conflict, err error) {
	changed, conflicts, err = update(path, pins)
	if err != nil {
		return false, nil, fmt.Errorf("hostsfile: update %s: %w", path, err)
	}
	return changed, conflicts, nil
}

func update(path string, pins []Pin) (bool, []Conflict, error) {
	// Refuse bad pins before creating a lock file.
	if _, err := canonical(pins); err != nil {
		return false, nil, err
	}
	mu := pathMutex(path)
	mu.Lock()
	defer mu.Unlock()

	unlock, onPath, err := lockFile(path)
	if err != nil {
		return false, nil, err
	}
	defer unlock()
	removeStaleTemps(path)

	prev, err := read(path)
	if err != nil {
		return false, nil, err
	}
	next, changed, err := rewrite(prev, pins)
	if err != nil {
		return false, nil, err
	}
	names := make([]string, len(pins))
	for i, p := range pins {
		names[i] = p.Name
	}
	conflicts := Conflicts(next, names)
	if !changed {
		return false, conflicts, nil
	}
	if err := write(path, next, onPath); err != nil {
		return false, conflicts, fmt.Errorf("write: %w", err)
	}
	return true, conflicts, nil
}

// lockFile takes the cross-process lock for path. onPath reports that it is
// held on path itself.
func lockFile(path string) (unlock func(), onPath bool, err error) {
	f, err := os.OpenFile(path+LockSuffix, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission) {
		f, err = os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		onPath = true
	}
	if err != nil {
		return nil, false, fmt.Errorf("lock: %w", err)
	}
	// Bounded: a process that holds the lock and hangs must not hang the
	// agent's connection or its stop.
	deadline := time.Now().Add(LockWait)
	for {
		err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if err != syscall.EWOULDBLOCK || time.Now().After(deadline) {
			f.Close()
			if err == syscall.EWOULDBLOCK {
				return nil, false, fmt.Errorf("lock %s: held by another process for over %v", f.Name(), LockWait)
			}
			return nil, false, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		time.Sleep(20 * time.Millisecond) // polling a file lock: there is no channel to wait on
	}
	// Closing the descriptor releases the flock.
	return func() { f.Close() }, onPath, nil
}

// read returns path's content, nil for a missing file. It refuses what Write
// would refuse, before reading: a FIFO would block the read forever.
func read(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case errors.Is(err, syscall.ELOOP):
		return nil, fmt.Errorf("read: %w", errSymlink)
	case err != nil:
		return nil, fmt.Errorf("read: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if err := checkRegular(fi); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return data, nil
}

// removeStaleTemps deletes temp files a writer killed mid-Write left beside
// path. Called under the cross-process lock, when no Update is writing.
func removeStaleTemps(path string) {
	dir, prefix := filepath.Dir(path), "."+filepath.Base(path)+".agent-tmp-"
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
