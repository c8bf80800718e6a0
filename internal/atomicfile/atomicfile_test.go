package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k.key")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(got) != "new" || st.Mode().Perm() != 0o600 {
		t.Errorf("got %q mode %v, want \"new\" 0600", got, st.Mode().Perm())
	}
	assertOnly(t, dir, "k.key")
}

func TestSetAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	var s Set
	if err := s.Add(filepath.Join(dir, "a"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(filepath.Join(dir, "missing", "b"), []byte("b"), 0o644); err == nil {
		t.Fatal("Add into a missing directory succeeded")
	}
	s.Abort()
	assertOnly(t, dir)
}

func TestSetCommit(t *testing.T) {
	dir := t.TempDir()
	var s Set
	defer s.Abort()
	for _, n := range []string{"a", "b"} {
		if err := s.Add(filepath.Join(dir, n), []byte(n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	assertOnly(t, dir, ".a.tmp-*", ".b.tmp-*")
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	assertOnly(t, dir, "a", "b")
}

func assertOnly(t *testing.T, dir string, patterns ...string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	if len(ents) != len(patterns) {
		t.Fatalf("%s holds %d files, want %d (%v)", dir, len(ents), len(patterns), patterns)
	}
	for i, e := range ents {
		if ok, _ := filepath.Match(patterns[i], e.Name()); !ok {
			t.Errorf("file %q, want %q", e.Name(), patterns[i])
		}
	}
}
