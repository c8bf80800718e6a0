package hostsfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrNotRegular is wrapped when the path to write or read is not a regular
// file: a directory, a FIFO, a device, or a symbolic link.
var ErrNotRegular = errors.New("not a regular file")

// Write replaces path's content with data atomically: a temp file in the same
// directory gets data, the old file's mode and owner (0644 and the process's
// owner for a missing file) and an fsync, is renamed over path, and the
// directory is fsynced, so a reader or a crash sees the old content or the
// new one, never a mix.
//
// When path is a bind mount, as container runtimes make /etc/hosts, rename
// fails (EBUSY, EXDEV) and so does creating the temp file if the directory is
// read-only (EROFS); Write then writes in place, under an exclusive flock on
// path: new content over the old, truncate, fsync. That is not atomic for
// readers, but it is the only write such a file allows; writing before
// truncating at least never leaves the file empty.
//
// Write refuses a path that is not a regular file, and a symbolic link too:
// replacing the link would cut it instead of writing its target.
func Write(path string, data []byte) error {
	if err := write(path, data, false); err != nil {
		return fmt.Errorf("hostsfile: write %s: %w", path, err)
	}
	return nil
}

// write is Write. pathLocked says the caller holds an flock on path itself:
// the in-place fallback must not take another, which would wait for the
// caller's own lock.
func write(path string, data []byte, pathLocked bool) error {
	mode := fs.FileMode(0o644)
	owner := (*syscall.Stat_t)(nil)
	fi, err := os.Lstat(path)
	switch {
	case err == nil:
		if err := checkRegular(fi); err != nil {
			return err
		}
		mode = fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		owner, _ = fi.Sys().(*syscall.Stat_t)
	case errors.Is(err, fs.ErrNotExist):
	default:
		return err
	}

	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".agent-tmp-")
	if err != nil {
		// A read-only directory around an existing, writable file means the
		// file is another mount: a bind mount in a container with a
		// read-only root.
		if fi != nil && errors.Is(err, syscall.EROFS) {
			return writeInPlace(path, data, pathLocked)
		}
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	if owner != nil {
		if err := chownLike(tmp, owner); err != nil {
			return err
		}
	}
	// After chown, which may clear set-id bits; fchmod ignores the umask.
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		if fi != nil && (errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EXDEV)) {
			os.Remove(tmp.Name())
			renamed = true // nothing left to clean up
			return writeInPlace(path, data, pathLocked)
		}
		return err
	}
	renamed = true
	return syncDir(dir)
}

// chownLike gives f the owner and group of st, skipping the call when they
// already match so that an unprivileged writer of its own file never needs
// CAP_CHOWN.
func chownLike(f *os.File, st *syscall.Stat_t) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if cur, ok := fi.Sys().(*syscall.Stat_t); ok && cur.Uid == st.Uid && cur.Gid == st.Gid {
		return nil
	}
	if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("keep owner %d:%d: %w", st.Uid, st.Gid, err)
	}
	return nil
}

// writeInPlace overwrites path's own inode, for files that cannot be
// replaced by rename.
func writeInPlace(path string, data []byte, pathLocked bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return errSymlink
		}
		return fmt.Errorf("in-place write (bind mount): %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := checkRegular(fi); err != nil {
		return err
	}
	if !pathLocked {
		// Released by Close.
		if err := flock(f, syscall.LOCK_EX); err != nil {
			return fmt.Errorf("in-place write (bind mount): lock: %w", err)
		}
	}
	// A shorter content is first written padded with newlines to the old
	// length and synced, then cut: a kill between the two leaves the new
	// content and some blank lines, never the old content's tail.
	out := data
	if old := fi.Size(); old > int64(len(data)) {
		out = append(append([]byte(nil), data...), bytes.Repeat([]byte{'\n'}, int(old-int64(len(data))))...)
	}
	if _, err := f.WriteAt(out, 0); err != nil {
		return fmt.Errorf("in-place write (bind mount): %w", err)
	}
	if len(out) != len(data) {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("in-place write (bind mount): %w", err)
		}
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		return fmt.Errorf("in-place write (bind mount): %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("in-place write (bind mount): %w", err)
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}

var errSymlink = fmt.Errorf("is a symbolic link; refusing to replace it, which would cut the link instead of writing its target (configure the target's path instead): %w", ErrNotRegular)

func checkRegular(fi fs.FileInfo) error {
	m := fi.Mode()
	switch {
	case m.IsRegular():
		return nil
	case m&fs.ModeSymlink != 0:
		return errSymlink
	case m.IsDir():
		return fmt.Errorf("is a directory: %w", ErrNotRegular)
	case m&fs.ModeNamedPipe != 0:
		return fmt.Errorf("is a named pipe (FIFO): %w", ErrNotRegular)
	case m&fs.ModeSocket != 0:
		return fmt.Errorf("is a socket: %w", ErrNotRegular)
	case m&fs.ModeDevice != 0:
		return fmt.Errorf("is a device: %w", ErrNotRegular)
	}
	return fmt.Errorf("has mode %s: %w", m, ErrNotRegular)
}

// flock retries on EINTR, which the Go runtime's signals can cause.
func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}
