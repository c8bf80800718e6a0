package agent

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// trimAfter is how long after the first connection the pages are trimmed.
const trimAfter = 10 * time.Second

// trimBinaryPages asks the kernel to reclaim the pages of the agent's own
// executable mapped into the process (code and read-only data), after the
// start-up work that touched most of them (flag parsing, config, TLS set-up,
// the first connection) is done. They stay in the page cache; what the
// steady loop needs faults back in at once, the rest (the CLI, the CA and
// EST code, init tables) leaves the resident set. On a 512 MiB board the
// file-backed part of a static Go binary is most of its RSS.
//
// Best effort: MADV_PAGEOUT needs Linux 5.4; anything that fails is left
// as it is.
func trimBinaryPages() {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// start-end perms offset dev inode path
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT)
	}
}
