package packaging

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeagent/agent/agent/config"
)

// root is the repository root, where the Makefile is.
const root = "../.."

// makeVar is a Makefile variable as `make` computes it, so the tests build
// with the flags a release uses.
func makeVar(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("make", "-s", "--no-print-directory", "-C", root, "print-"+name).Output()
	if err != nil {
		t.Fatalf("make print-%s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

// buildAgent builds ./cmd/agent for goos/goarch into dir with the Makefile's
// flags and returns the binary's path.
func buildAgent(t *testing.T, dir, goos, goarch string) string {
	t.Helper()
	bin := filepath.Join(dir, "agent")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", makeVar(t, "LDFLAGS"), "-o", bin, "./cmd/agent")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build agent for %s/%s: %v\n%s", goos, goarch, err, out)
	}
	return bin
}

// TestReproducibleBuild: two builds of one tree for a board give the same
// bytes (-trimpath, -buildid=, and the commit's date, never the clock).
func TestReproducibleBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent twice for linux/arm64; skipped with -short")
	}
	a, err := os.ReadFile(buildAgent(t, t.TempDir(), "linux", "arm64"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(buildAgent(t, t.TempDir(), "linux", "arm64"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("two linux/arm64 builds differ: %d and %d bytes", len(a), len(b))
	}
}

// TestVersionOutput: `agent version` says what was built, from where, when
// and for what, in one line whose second field is the version.
func TestVersionOutput(t *testing.T) {
	bin := buildAgent(t, t.TempDir(), runtime.GOOS, runtime.GOARCH)
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("agent version: %v", err)
	}
	got := string(out)
	want := fmt.Sprintf("agent %s (commit %s, %s, %s/%s)\n",
		makeVar(t, "VERSION"), makeVar(t, "COMMIT"), makeVar(t, "DATE"), runtime.GOOS, runtime.GOARCH)
	if got != want {
		t.Errorf("agent version:\n got %q\nwant %q", got, want)
	}
	shape := regexp.MustCompile(`^agent \S+ \(commit ([0-9a-f]{40}|unknown), (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ|unknown), [a-z0-9]+/[a-z0-9]+\)\n$`)
	if !shape.MatchString(got) {
		t.Errorf("agent version: %q does not match %s", got, shape)
	}
}

// systemdAnalyze returns the path of systemd-analyze or skips the test.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd): the unit is not checked")
	}
	return p
}

// unitWithBinary writes systemd/agent.service into a temp dir with
// ExecStart pointing at a built agent beside it: verify wants the binary.
func unitWithBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := buildAgent(t, dir, runtime.GOOS, runtime.GOARCH)
	unit, err := os.ReadFile(filepath.Join(root, "systemd", "agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	const exec = "ExecStart=/usr/bin/agent "
	if !bytes.Contains(unit, []byte(exec)) {
		t.Fatalf("systemd/agent.service: no %q line", exec)
	}
	unit = bytes.Replace(unit, []byte(exec), []byte("ExecStart="+bin+" "), 1)
	path := filepath.Join(dir, "agent.service")
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestUnitVerify: systemd accepts every line of the unit.
func TestUnitVerify(t *testing.T) {
	sa := systemdAnalyze(t)
	out, err := exec.Command(sa, "verify", unitWithBinary(t)).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// exposure matches systemd-analyze security's summary line:
// "→ Overall exposure level for agent.service: 1.5 OK 🙂".
var exposure = regexp.MustCompile(`Overall exposure level for agent\.service: (\d+(?:\.\d+)?)`)

// TestUnitExposure: the hardening holds, as systemd scores it.
func TestUnitExposure(t *testing.T) {
	sa := systemdAnalyze(t)
	out, err := exec.Command(sa, "security", "--offline=yes", filepath.Join(root, "systemd", "agent.service")).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := exposure.FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: no overall exposure line in\n%s", out)
	}
	got, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exposure %.1f", got)
	if got >= 3.0 {
		t.Errorf("exposure %.1f, want under 3.0:\n%s", got, out)
	}
}

// TestUnitDirectives: the lines the agent's contract with systemd rests on
// (sd_notify, the watchdog, no retry of exit 2, SIGHUP reload, no root).
func TestUnitDirectives(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join(root, "systemd", "agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(unit), "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, want := range []string{
		"Type=notify",
		"WatchdogSec=30s",
		"Restart=on-failure",
		"RestartPreventExitStatus=2",
		"ExecReload=/bin/kill -HUP $MAINPID",
		"User=agent",
		"Group=agent",
		"ProtectSystem=strict",
		"ReadWritePaths=-/etc/hosts",
		"StateDirectory=agent",
		"ConfigurationDirectory=agent",
		"DevicePolicy=closed",
		"DeviceAllow=char-gpiochip rw",
		"DeviceAllow=char-i2c rw",
		"CapabilityBoundingSet=",
		"NoNewPrivileges=yes",
		"UMask=0077",
	} {
		if !lines[want] {
			t.Errorf("systemd/agent.service: no line %q", want)
		}
	}
	// ProcSubset=pid hides /proc/loadavg, /proc/uptime and /proc/meminfo,
	// which the "system" sensor reads.
	if lines["ProcSubset=pid"] {
		t.Error("systemd/agent.service: ProcSubset=pid would break the system sensor")
	}
}

// TestExampleConfig: the packaged conffile is all comments, so the agent
// refuses it until broker.host is set (exit 2, not retried), and it parses
// strictly once its keys are uncommented.
func TestExampleConfig(t *testing.T) {
	path := filepath.Join(root, "scripts", "deb", "agent.toml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Parse(path, data); err == nil {
		t.Error("the commented example parses: want a refusal naming broker.host")
	} else if !strings.Contains(err.Error(), "broker.host") {
		t.Errorf("the commented example: %v, want it to name broker.host", err)
	}
	// "#key = v" and "#[table]" are settings; "# text" is prose.
	setting := regexp.MustCompile(`(?m)^#([a-z\[])`)
	on := setting.ReplaceAll(data, []byte("$1"))
	if _, err := config.Parse(path, on); err != nil {
		t.Errorf("the example with its settings uncommented: %v", err)
	}
}

// buildDeb makes the amd64 package into a temp dir through the Makefile's
// deb-package target and returns its path.
func buildDeb(t *testing.T, bin string) string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command("make", "-s", "--no-print-directory", "-C", root, "deb-package",
		"DEB_ARCH=amd64", "AGENT_BIN="+bin, "DEB_OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make deb-package: %v\n%s", err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(out, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb-package: want one .deb in %s, got %v", out, debs)
	}
	return debs[0]
}

// TestDebPackage inspects the amd64 .deb (it is never installed here): the
// files and their modes, the conffile, and maintainer scripts that create
// the service user and start nothing. Two builds give the same bytes.
func TestDebPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds nfpm and a package; skipped with -short")
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed: the package is not inspected")
	}
	bin := buildAgent(t, t.TempDir(), "linux", "amd64")
	deb := buildDeb(t, bin)
	version := makeVar(t, "DEB_VERSION")
	if got, want := filepath.Base(deb), "agent_"+version+"_amd64.deb"; got != want {
		t.Errorf("package file %s, want %s", got, want)
	}

	field := func(name string) string {
		out, err := exec.Command("dpkg-deb", "-f", deb, name).Output()
		if err != nil {
			t.Fatalf("dpkg-deb -f %s: %v", name, err)
		}
		return strings.TrimSpace(string(out))
	}
	for name, want := range map[string]string{
		"Package": "agent", "Version": version, "Architecture": "amd64", "Depends": "adduser",
	} {
		if got := field(name); got != want {
			t.Errorf("control %s: %q, want %q", name, got, want)
		}
	}

	// dpkg-deb -c: "-rwxr-xr-x root/root 10580094 2026-11-23 08:58 ./usr/bin/agent"
	list, err := exec.Command("dpkg-deb", "-c", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb -c: %v", err)
	}
	files := map[string]string{} // path -> "mode owner"
	for _, l := range strings.Split(strings.TrimSpace(string(list)), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c: unexpected line %q", l)
		}
		files[strings.TrimPrefix(f[5], ".")] = f[0] + " " + f[1]
	}
	for path, want := range map[string]string{
		"/usr/bin/agent":                    "-rwxr-xr-x root/root",
		"/lib/systemd/system/agent.service": "-rw-r--r-- root/root",
		"/etc/agent/agent.toml":             "-rw-r--r-- root/root",
	} {
		if got, ok := files[path]; !ok {
			t.Errorf("package: no %s", path)
		} else if got != want {
			t.Errorf("package: %s is %s, want %s", path, got, want)
		}
	}
	shipped, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := exec.Command("dpkg-deb", "--fsys-tarfile", deb).Output(); err != nil {
		t.Fatalf("dpkg-deb --fsys-tarfile: %v", err)
	} else if !bytes.Contains(got, shipped) {
		t.Error("package: /usr/bin/agent is not the binary it was built from")
	}

	ctl := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-e", deb, ctl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(filepath.Join(ctl, "conffiles")); strings.TrimSpace(string(got)) != "/etc/agent/agent.toml" {
		t.Errorf("conffiles: %q, want /etc/agent/agent.toml", got)
	}
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		fi, err := os.Stat(filepath.Join(ctl, script))
		if err != nil {
			t.Errorf("maintainer script %s: %v", script, err)
			continue
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("maintainer script %s: mode %v, want 0755", script, fi.Mode().Perm())
		}
		if out, err := exec.Command("sh", "-n", filepath.Join(ctl, script)).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", script, err, out)
		}
	}
	postinst, _ := os.ReadFile(filepath.Join(ctl, "postinst"))
	for _, want := range []string{"adduser --system --group", "chgrp agent /etc/hosts", "chmod g+w /etc/hosts", "/etc/agent/tls"} {
		if !bytes.Contains(postinst, []byte(want)) {
			t.Errorf("postinst: no %q", want)
		}
	}
	// The service is enabled by the admin once configured, never by the package.
	for _, banned := range []string{"systemctl enable", "systemctl start", "systemctl restart", "deb-systemd-helper enable"} {
		if bytes.Contains(postinst, []byte(banned)) {
			t.Errorf("postinst: %q: the package must not enable or start the service", banned)
		}
	}

	again, err := os.ReadFile(buildDeb(t, bin))
	if err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, again) {
		t.Error("two builds of the amd64 package differ (SOURCE_DATE_EPOCH not honoured?)")
	}
}

// TestDebInstall installs the amd64 package for real with dpkg -i, into a
// copy-on-write view of this machine (an overlay of / in a private mount
// namespace, entered with chroot), so nothing changes on the machine
// itself: the agent user is created, the files land with their modes,
// /etc/hosts becomes group agent and group-writable for the broker pin,
// the config is a conffile, and the service is neither enabled nor started.
func TestDebInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and installs a package")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: dpkg -i in a private mount namespace")
	}
	for _, tool := range []string{"unshare", "dpkg", "chroot"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s here", tool)
		}
	}
	deb := buildDeb(t, buildAgent(t, t.TempDir(), "linux", "amd64"))
	ovl := t.TempDir()
	for _, d := range []string{"upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(ovl, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ovl, "upper", "agent.deb"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `set -e
mount -t overlay overlay -o lowerdir=/,upperdir="$1/upper",workdir="$1/work" "$1/merged"
mount --bind /proc "$1/merged/proc"
mount --bind /dev "$1/merged/dev"
exec chroot "$1/merged" sh -c '
dpkg -i /agent.deb >/dev/null
echo "user: $(id -un agent) $(id -gn agent)"
stat -c "%n %U:%G %a" /usr/bin/agent /etc/agent/agent.toml /lib/systemd/system/agent.service /etc/hosts /etc/agent/tls
dpkg-query -W -f="conffiles:\${Conffiles}\n" agent
ls /etc/systemd/system/multi-user.target.wants/agent.service 2>/dev/null || echo "not enabled"
'`
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", ovl).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "overlay") || strings.Contains(string(out), "mount") {
			t.Skipf("an overlay of / cannot be mounted here: %v: %s", err, out)
		}
		t.Fatalf("dpkg -i in the overlay: %v\n%s", err, out)
	}
	got := string(out)
	for _, w := range []string{
		"user: agent agent",
		"/usr/bin/agent root:root 755",
		"/etc/agent/agent.toml root:root 644",
		"/lib/systemd/system/agent.service root:root 644",
		"/etc/hosts root:agent",
		"/etc/agent/tls agent:agent 750",
		"/etc/agent/agent.toml",
		"not enabled",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("installed package lacks %q:\n%s", w, got)
		}
	}
	if _, err := exec.Command("id", "agent").Output(); err == nil {
		t.Log("note: this machine has an agent user of its own")
	}
	t.Logf("installed in the overlay:\n%s", got)
}
