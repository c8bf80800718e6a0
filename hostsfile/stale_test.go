package hostsfile

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// TestUpdateRemovesStaleTemps: a writer killed mid-Write leaves its temp
// file; the next Update cleans it up and leaves everything else alone.
func TestUpdateRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts")
	stale := filepath.Join(dir, ".hosts.agent-tmp-123")
	other := filepath.Join(dir, ".hosts.something-else")
	for _, f := range []string{stale, other} {
		if err := os.WriteFile(f, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := Update(path, []Pin{{Name: "broker.test", Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temp file still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("unrelated file removed: %v", err)
	}
}
