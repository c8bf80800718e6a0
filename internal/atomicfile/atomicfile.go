// Package atomicfile writes files so that a crash or power cut at any moment
// leaves either the old contents or the new ones, never a mix or an empty
// file: write a temporary file in the same directory, fsync it, rename it
// over the target, fsync the directory.
//
// The CA's index, keys and CRL and a device's enrolled credentials are all
// written this way. Several files that must change together go through a
// Set: every file is staged first, and only when all are staged are they
// renamed into place, so a failure before the renames leaves nothing behind.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile writes data to path atomically with mode perm. The mode is set
// on the temporary file before any data is written, so a key is never
// readable by others even for a moment.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	var s Set
	if err := s.Add(path, data, perm); err != nil {
		return err
	}
	return s.Commit()
}

// A Set stages several files and puts them in place together.
// The zero value is ready to use. Call Abort (or Commit) when done; Abort
// after Commit does nothing, so `defer s.Abort()` is the usual shape.
type Set struct {
	staged []staged
	done   bool
}

type staged struct{ tmp, path string }

// Add writes data to a synced temporary file beside path.
func (s *Set) Add(path string, data []byte, perm os.FileMode) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	s.staged = append(s.staged, staged{tmp: tmp, path: path})
	return nil
}

// Commit renames every staged file into place and syncs their directories.
func (s *Set) Commit() error {
	if s.done {
		return errors.New("atomicfile: Set already committed or aborted")
	}
	s.done = true
	dirs := map[string]bool{}
	for i, st := range s.staged {
		if err := os.Rename(st.tmp, st.path); err != nil {
			for _, rest := range s.staged[i:] {
				os.Remove(rest.tmp)
			}
			return fmt.Errorf("write %s: %w", st.path, err)
		}
		dirs[filepath.Dir(st.path)] = true
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// Abort removes the staged files that were not committed.
func (s *Set) Abort() {
	if s.done {
		return
	}
	s.done = true
	for _, st := range s.staged {
		os.Remove(st.tmp)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
