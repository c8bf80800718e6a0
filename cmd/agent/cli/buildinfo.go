package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// commit and date say which source a binary was built from: the commit's
// hash and the commit's date (not the build's, so two builds of one commit
// are the same bytes). The Makefile sets them with -ldflags
// "-X github.com/edgeagent/agent/cmd/agent/cli.commit=…"; main passes only the
// version, so cmd/agent/main.go stays a thin shell. A plain `go build` leaves
// them empty and versionLine takes them from the VCS stamp instead.
var (
	commit string
	date   string
)

// versionLine is what `agent version` prints: one line, the version first so
// that `agent version | cut -d' ' -f2` keeps working.
//
//	agent v1.4.0 (commit 3f2c9e1…, 2026-05-04T09:12:44Z, linux/arm64)
func versionLine(version string) string {
	c, d := commit, date
	if c == "" || d == "" {
		vc, vd := vcsStamp()
		if c == "" {
			c = vc
		}
		if d == "" {
			d = vd
		}
	}
	if c == "" {
		c = "unknown"
	}
	if d == "" {
		d = "unknown"
	}
	return fmt.Sprintf("agent %s (commit %s, %s, %s/%s)", version, c, d, runtime.GOOS, runtime.GOARCH)
}

// vcsStamp reads the revision and commit time that go build records when it
// builds inside a git checkout.
func vcsStamp() (revision, when string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", ""
	}
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if revision != "" && modified {
		revision += "-dirty"
	}
	return revision, when
}
