package hostsfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeagent/agent/internal/testexec"
)

func TestWriteKeepsModeAndOwner(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts")
	if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	root := os.Geteuid() == 0
	if root {
		if err := os.Chown(path, 1234, 1234); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Log("not root: the owner part is checked only as root")
	}

	if err := Write(path, []byte("new\n")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode(); got != 0o640 {
		t.Errorf("mode = %v, want %v", got, fs.FileMode(0o640))
	}
	if st := fi.Sys().(*syscall.Stat_t); root && (st.Uid != 1234 || st.Gid != 1234) {
		t.Errorf("owner = %d:%d, want 1234:1234", st.Uid, st.Gid)
	}
	if got, _ := os.ReadFile(path); string(got) != "new\n" {
		t.Errorf("content = %q, want %q", got, "new\n")
	}
	if got := dirNames(t, dir); got != "hosts" {
		t.Errorf("directory holds %q, want only hosts (temp file left?)", got)
	}
}

func TestWriteNewFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts")
	if err := Write(path, []byte("127.0.0.1 localhost\n")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o644 {
		t.Errorf("mode of a new file = %v, want -rw-r--r--", fi.Mode())
	}
	// An empty content is a valid content.
	if err := Write(path, nil); err != nil {
		t.Fatalf("Write(empty): %v", err)
	}
	if fi, _ := os.Stat(path); fi.Size() != 0 {
		t.Errorf("size after an empty write = %d", fi.Size())
	}
}

func TestWriteErrorNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "hosts")
	err := Write(path, []byte("x\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "hostsfile: write "+path+": ") {
		t.Errorf("Write into a missing directory: err = %v, want it to start with the path", err)
	}
}

func TestRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("target\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, want string
		make       func(path string) error
	}{
		{"directory", "is a directory", func(p string) error { return os.Mkdir(p, 0o755) }},
		{"fifo", "is a named pipe", func(p string) error { return syscall.Mkfifo(p, 0o644) }},
		{"symlink", "is a symbolic link", func(p string) error { return os.Symlink(target, p) }},
		{"dangling symlink", "is a symbolic link", func(p string) error { return os.Symlink(filepath.Join(dir, "nowhere"), p) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := tc.make(path); err != nil {
				t.Fatal(err)
			}
			before, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			check := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
					t.Errorf("%s: err = %v, want ErrNotRegular saying %q and naming the path", what, err, tc.want)
				}
			}
			check("Write", Write(path, []byte("x\n")))
			// Update must refuse before reading: reading a FIFO would block.
			_, _, err = Update(path, brokerPin)
			check("Update", err)

			after, err := os.Lstat(path)
			if err != nil || after.Mode() != before.Mode() || !os.SameFile(before, after) {
				t.Errorf("the %s was replaced or changed", tc.name)
			}
			if got, _ := os.ReadFile(target); string(got) != "target\n" {
				t.Errorf("symlink target changed to %q", got)
			}
		})
	}
	if got := dirNames(t, dir); strings.Contains(got, "tmp") {
		t.Errorf("temp files left: %s", got)
	}
}

const bindMountContent = "127.0.0.1 localhost\n# written in place\n"

// TestWriteBindMount runs Write and Update for real on a bind-mounted file,
// in a child process inside its own mount namespace: once with a writable
// directory (rename fails with EBUSY) and once with a read-only one (the
// temp file fails with EROFS, as under systemd's ProtectSystem with
// ReadWritePaths=/etc/hosts). The in-place write lands in the mounted
// file's inode, which the parent sees as the bind source's new content.
func TestWriteBindMount(t *testing.T) {
	requireMountNamespace(t)
	const (
		mountFile = `mount --bind "$SRC" "$DIR/hosts" && exec "$@"`
		mountRO   = `mount --bind "$DIR" "$DIR" && mount -o remount,bind,ro "$DIR" && mount --bind "$SRC" "$DIR/hosts" && exec "$@"`
		// The packaged unit: a non-root service (here nobody) whose group
		// may write the file, under a read-only /etc.
		mountROAsGroup = `mount --bind "$DIR" "$DIR" && mount -o remount,bind,ro "$DIR" && mount --bind "$SRC" "$DIR/hosts" && exec setpriv --reuid=65534 --regid="$GID" --clear-groups "$@"`
	)
	for _, tc := range []struct{ name, script, mode string }{
		{"rename EBUSY/Write", mountFile, "write"},
		{"rename EBUSY/Update", mountFile, "update"},
		{"read-only dir EROFS/Write", mountRO, "write"},
		{"read-only dir EROFS/Update", mountRO, "update"},
		{"read-only dir, group-writable file, non-root/Update", mountROAsGroup, "update"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			dir := filepath.Join(tmp, "etc")
			src := filepath.Join(tmp, "container-hosts")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			const under = "under the mount\n"
			if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(under), 0o644); err != nil {
				t.Fatal(err)
			}
			const old = "127.0.0.1 localhost\n10.0.0.1 a-longer-old-line-that-the-new-content-must-truncate.test\n"
			if err := os.WriteFile(src, []byte(old), 0o644); err != nil {
				t.Fatal(err)
			}
			gid := 0
			if tc.script == mountROAsGroup {
				if _, err := exec.LookPath("setpriv"); err != nil || os.Geteuid() != 0 {
					t.Skip("needs root and setpriv(1) to run the writer as another user")
				}
				if os.Getenv(testexec.EmulatorEnv) != "" {
					t.Skip("under qemu-user the emulated child cannot open the test binary in go test's private build directory as another user; this case runs natively")
				}
				// The writer (nobody) must reach the file and, through
				// its group only, write it.
				gid = 65534
				for d := tmp; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
					_ = os.Chmod(d, 0o755)
				}
				if err := os.Chown(src, 0, gid); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(src, 0o664); err != nil {
					t.Fatal(err)
				}
			}
			ctx := boundedContext(t, time.Minute)
			cmd := helperCommand(t, ctx, tc.mode, filepath.Join(dir, "hosts"), "unshare", "-m", "sh", "-c", tc.script, "sh")
			cmd.Env = append(cmd.Env, "SRC="+src, "DIR="+dir, fmt.Sprintf("GID=%d", gid))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}

			got, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			want := bindMountContent
			if tc.mode == "update" {
				want = "127.0.0.1 localhost\n10.0.0.1 a-longer-old-line-that-the-new-content-must-truncate.test\n" +
					beginMarker + "\n192.0.2.10\tbroker.test\n" + endMarker + "\n"
			}
			if string(got) != want {
				t.Errorf("bind source after the child's %s = %q, want %q", tc.mode, got, want)
			}
			if got, _ := os.ReadFile(filepath.Join(dir, "hosts")); string(got) != under {
				t.Errorf("file under the mount = %q, want it untouched", got)
			}
			wantNames := "hosts"
			if tc.mode == "update" && tc.script == mountFile {
				wantNames = "hosts hosts" + LockSuffix
			}
			if got := dirNames(t, dir); got != wantNames {
				t.Errorf("directory holds %q, want %q (temp file left?)", got, wantNames)
			}
		})
	}
}

// crashContents returns the writer loop's two contents: hosts-like, of
// distinct lengths, large enough that a kill often lands inside a write.
func crashContents() (a, b []byte) {
	var ba, bb bytes.Buffer
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&ba, "10.0.%d.%d\thost-a-%d.test\n", i/250, i%250+1, i)
	}
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&bb, "10.1.%d.%d\thost-bb-%d.test\n", i/250, i%250+1, i)
	}
	return ba.Bytes(), bb.Bytes()
}

// TestWriteCrashSafety kills a writer alternating two contents with SIGKILL
// at random moments; after every kill the file holds one of them exactly.
// (A process kill leaves the page cache; power loss is what the fsyncs are
// for, and no test here can cut power.)
func TestWriteCrashSafety(t *testing.T) {
	const kills = 60
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts")
	a, b := crashContents()
	if err := os.WriteFile(path, a, 0o644); err != nil {
		t.Fatal(err)
	}
	var sawA, sawB, midWrite int
	for i := range kills {
		ctx := boundedContext(t, time.Minute)
		cmd := helperCommand(t, ctx, "writer-loop", path)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan error, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if sc.Text() == "ready" {
					ready <- nil
					return
				}
			}
			ready <- fmt.Errorf("no ready line: %v", sc.Err())
		}()
		select {
		case err := <-ready:
			if err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("kill %d: writer did not start: %v\n%s", i, err, stderr.Bytes())
			}
		case <-ctx.Done():
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("kill %d: writer not ready within the limit\n%s", i, stderr.Bytes())
		}

		// Not synchronisation: this only picks the moment of the kill.
		moment := time.NewTimer(rand.N(4 * time.Millisecond))
		<-moment.C
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		err = cmd.Wait() // bounded by ctx through CommandContext and WaitDelay
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("kill %d: writer ended with %v, want killed by SIGKILL\n%s", i, err, stderr.Bytes())
		}

		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		switch {
		case bytes.Equal(got, a):
			sawA++
		case bytes.Equal(got, b):
			sawB++
		default:
			t.Fatalf("kill %d: file is neither content: %d bytes (A has %d, B %d)", i, len(got), len(a), len(b))
		}
		// A temp file left behind means the kill landed inside Write.
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Name() != "hosts" {
				midWrite++
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	t.Logf("%d kills: file was A %d times, B %d times; %d kills landed inside Write", kills, sawA, sawB, midWrite)
	if midWrite == 0 {
		t.Log("no kill landed inside Write this run; the check is weaker than intended")
	}
}
