package brokerconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edgeagent/agent/internal/atomicfile"
	"github.com/edgeagent/agent/pki"
)

// Result is what Write did.
type Result struct {
	Options Options // with defaults filled and paths absolute
	// Written are the files written, Unchanged those already as generated.
	Written, Unchanged []string
	// Removed is a stale agent-local.acl of an earlier --local-plain.
	Removed []string

	CertFile, KeyFile, CAFile, CRLFile string
	ConfFile, ACLFile, LocalACLFile    string // LocalACLFile "" without LocalPlain
	// Issued: a new broker certificate was issued; else the one in place
	// was checked and reused.
	Issued      bool
	CertSerial  string
	CertNames   []string // its DNS and IP SANs
	CertExpires time.Time
	// KeyOwner is "root:<group>" with mode 0640 when the key was given to
	// the broker's group, "" when ownership was left alone (see Notes).
	KeyOwner string
	// Notes are sentences for the operator: ownership left alone,
	// directories the broker cannot enter, …
	Notes []string
}

// Write generates everything for o: it checks o (Render), opens the CA
// directory, reuses the broker certificate in CertDir when it fits (for
// Host and every SAN, from this CA, not revoked, valid for more than
// RenewBefore) or issues one when there is none or o.Reissue is set
// (ErrReissue when one is there that does not fit and o.Reissue is not),
// refreshes the CA's CRL if half its validity is gone, and writes the
// certificate, the key (0600, or 0640 root:group of BrokerUser when
// running as root), ca.crt, ca.crl, the ACL files and agent.conf in one
// atomic set: a failure writes none of them. Files already as generated
// are left alone (Result.Unchanged).
func Write(o Options) (Result, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	for _, p := range []*string{&o.CADir, &o.Out, &o.CertDir} {
		if *p != "" && !filepath.IsAbs(*p) {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return Result{}, fmt.Errorf("broker-config: %w", err)
			}
			*p = abs
		}
	}
	files, err := Render(o)
	if err != nil {
		return Result{}, err
	}
	o, _ = o.withDefaults() // checked by Render
	r := Result{Options: o,
		CertFile: filepath.Join(o.CertDir, CertFile), KeyFile: filepath.Join(o.CertDir, KeyFile),
		CAFile: filepath.Join(o.CertDir, CAFile), CRLFile: filepath.Join(o.CertDir, CRLFile),
		ConfFile: filepath.Join(o.Out, ConfFile), ACLFile: filepath.Join(o.Out, ACLFile)}
	if o.LocalPlain {
		r.LocalACLFile = filepath.Join(o.Out, LocalACLFile)
	}

	ca, err := pki.OpenDir(o.CADir)
	if err != nil {
		return r, fmt.Errorf("broker-config: --ca-dir: %w", err)
	}
	owner, err := brokerOwner(o.BrokerUser)
	if err != nil {
		return r, err
	}
	keyMode := os.FileMode(0o600)
	if owner != nil {
		keyMode = 0o640
	} else if os.Geteuid() == 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("no system user %q: %s stays root's (0600); a Mosquitto started as root that drops to another user cannot read it", o.BrokerUser, r.KeyFile))
	} else {
		r.Notes = append(r.Notes, fmt.Sprintf("not running as root: files stay owned by uid %d; a Mosquitto started as root drops to %q and must read the key: `chown root:%s %s && chmod 0640 %s`",
			os.Geteuid(), o.BrokerUser, o.BrokerUser, r.KeyFile, r.KeyFile))
	}

	var pair *pki.Pair
	var cert *x509.Certificate
	if !o.Reissue {
		if cert, err = reusable(o, ca, r.CertFile, r.KeyFile); err != nil {
			return r, err
		}
	}
	if cert != nil {
		r.CertSerial, r.CertNames, r.CertExpires = pki.FormatSerial(cert.SerialNumber), certNames(cert), cert.NotAfter
	} else {
		if old, err := pki.ParseCertFile(r.CertFile); err == nil {
			r.Notes = append(r.Notes, fmt.Sprintf("the replaced broker certificate %s stays valid until %s: `agent ca revoke --dir %s --serial %s` if its key may have leaked",
				pki.FormatSerial(old.SerialNumber), old.NotAfter.UTC().Format(time.DateOnly), o.CADir, pki.FormatSerial(old.SerialNumber)))
		}
		pair, err = ca.Issue(pki.IssueOptions{CN: o.Host, Server: true, SANs: o.SANs, Days: o.Days, Key: o.Key}, o.Now)
		if err != nil {
			return r, fmt.Errorf("broker-config: issue the broker certificate: %w", err)
		}
		r.Issued = true
		r.CertSerial, r.CertNames, r.CertExpires = pki.FormatSerial(pair.Cert.SerialNumber), certNames(pair.Cert), pair.Cert.NotAfter
	}
	crl, _, err := ca.RefreshCRL(o.Now, pki.CRLValidity/2)
	if err != nil {
		return r, fmt.Errorf("broker-config: %w", err)
	}

	for _, d := range []string{o.Out, o.CertDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return r, fmt.Errorf("broker-config: %w", err)
		}
	}
	var set atomicfile.Set
	defer set.Abort()
	add := func(path string, data []byte, mode os.FileMode) error {
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
			if st, err := os.Stat(path); err == nil && st.Mode().Perm() == mode {
				r.Unchanged = append(r.Unchanged, path)
				return nil
			}
		}
		if err := set.Add(path, data, mode); err != nil {
			return fmt.Errorf("broker-config: %w", err)
		}
		r.Written = append(r.Written, path)
		return nil
	}
	if pair != nil {
		// Key first: a crash between the renames leaves a key without its
		// certificate, which the next run reports, never the reverse.
		if err := add(r.KeyFile, pair.KeyPEM, keyMode); err != nil {
			return r, err
		}
		if err := add(r.CertFile, pair.CertPEM, 0o644); err != nil {
			return r, err
		}
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{r.CAFile, ca.CA.CertPEM}, {r.CRLFile, crl}, {r.ACLFile, files.ACL}, {r.LocalACLFile, files.LocalACL}, {r.ConfFile, files.Conf}} {
		if f.path == "" {
			continue
		}
		if err := add(f.path, f.data, 0o644); err != nil {
			return r, err
		}
	}
	if err := set.Commit(); err != nil {
		return r, fmt.Errorf("broker-config: %w", err)
	}
	if !o.LocalPlain {
		stale := filepath.Join(o.Out, LocalACLFile)
		if data, err := os.ReadFile(stale); err == nil && bytes.HasPrefix(data, []byte(generatedTag)) {
			if err := os.Remove(stale); err == nil {
				r.Removed = append(r.Removed, stale)
			}
		}
	}
	if owner != nil {
		// Mosquitto 2.0.11 loads the key after dropping to its user: a
		// root-only key makes it exit with "Unable to load server key
		// file" (measured). Root keeps the key, the broker's group may
		// only read it. After the rename: atomicfile creates its
		// temporary files as us.
		if err := os.Chown(r.KeyFile, 0, owner.gid); err != nil {
			return r, fmt.Errorf("broker-config: give %s to group %s: %w", r.KeyFile, owner.group, err)
		}
		if err := os.Chmod(r.KeyFile, 0o640); err != nil {
			return r, fmt.Errorf("broker-config: %w", err)
		}
		r.KeyOwner = "root:" + owner.group
		for _, p := range []string{r.KeyFile, r.CRLFile, r.ACLFile, r.LocalACLFile} {
			if p == "" {
				continue
			}
			if dir := blockedDir(p, owner.uid, owner.gid); dir != "" {
				r.Notes = append(r.Notes, fmt.Sprintf("%s cannot be entered by user %s, which Mosquitto drops to: it will not read %s (chmod o+x %s)", dir, o.BrokerUser, p, dir))
				break
			}
		}
	} else if st, err := os.Stat(r.KeyFile); err == nil && st.Mode().Perm()&0o077 != 0 && !r.Issued {
		r.Notes = append(r.Notes, fmt.Sprintf("%s is readable by others (mode %04o): chmod 0600 or 0640 it", r.KeyFile, st.Mode().Perm()))
	}
	return r, nil
}

type account struct {
	uid, gid int
	group    string
}

// brokerOwner is the account the key goes to: nil when not running as
// root (nothing to chown) or when the user does not exist.
func brokerOwner(name string) (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return nil, nil
		}
		return nil, fmt.Errorf("broker-config: look up user %q: %w", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("broker-config: user %q has uid %q gid %q: not numeric", name, u.Uid, u.Gid)
	}
	group := u.Gid
	if g, err := user.LookupGroupId(u.Gid); err == nil {
		group = g.Name
	}
	return &account{uid: uid, gid: gid, group: group}, nil
}

// blockedDir is the first directory above path that uid/gid cannot
// search, "" if none.
func blockedDir(path string, uid, gid int) string {
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return d
		}
		perm := st.Mode().Perm()
		ok := perm&0o001 != 0
		if sys, isSys := st.Sys().(*syscall.Stat_t); isSys {
			switch {
			case int(sys.Uid) == uid:
				ok = perm&0o100 != 0
			case int(sys.Gid) == gid:
				ok = perm&0o010 != 0
			}
		}
		if !ok {
			return d
		}
		if d == filepath.Dir(d) {
			return ""
		}
	}
}

// reusable returns the broker certificate in place if it fits o, nil and
// no error if there is none, or an ErrReissue saying why it does not fit.
func reusable(o Options, ca *pki.Dir, certPath, keyPath string) (*x509.Certificate, error) {
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	certGone, keyGone := errors.Is(certErr, fs.ErrNotExist), errors.Is(keyErr, fs.ErrNotExist)
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("broker-config: %s: %s: pass --reissue to issue a new broker certificate in its place: %w",
			certPath, fmt.Sprintf(format, args...), ErrReissue)
	}
	switch {
	case certGone && keyGone:
		return nil, nil
	case certGone:
		return nil, refuse("missing while %s is there", keyPath)
	case keyGone:
		return nil, refuse("%s is missing", keyPath)
	case certErr != nil:
		return nil, fmt.Errorf("broker-config: %w", certErr)
	case keyErr != nil:
		return nil, fmt.Errorf("broker-config: %w", keyErr)
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, refuse("unusable with %s: %v", keyPath, err)
	}
	cert := pair.Leaf
	roots := x509.NewCertPool()
	roots.AddCert(ca.CA.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: o.Now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return nil, refuse("not a server certificate of the CA in %s valid now: %v", o.CADir, err)
	}
	for _, name := range append([]string{o.Host}, o.SANs...) {
		if err := cert.VerifyHostname(name); err != nil {
			return nil, refuse("not for %s (it names %s)", name, strings.Join(certNames(cert), ", "))
		}
	}
	if left := cert.NotAfter.Sub(o.Now); left < RenewBefore {
		return nil, refuse("expires %s, in less than %d days", cert.NotAfter.UTC().Format(time.RFC3339), int(RenewBefore.Hours()/24))
	}
	recs, err := ca.List()
	if err != nil {
		return nil, fmt.Errorf("broker-config: %w", err)
	}
	for _, rec := range recs {
		if rec.Serial != nil && rec.Serial.Cmp(cert.SerialNumber) == 0 && !rec.Revoked.IsZero() {
			return nil, refuse("revoked at %s", rec.Revoked.UTC().Format(time.RFC3339))
		}
	}
	return cert, nil
}

func certNames(c *x509.Certificate) []string {
	names := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

// AgentTOML is what the master's agent.toml needs so it keeps the copied
// CRL fresh and makes Mosquitto reload it.
func (r Result) AgentTOML() string {
	o := r.Options
	var b strings.Builder
	b.WriteString("# the master's agent.toml (role = \"master\")\n")
	fmt.Fprintf(&b, "[enroll]\nca_dir = %s\n[crl]\nfile = %s\n", strconv.Quote(o.CADir), strconv.Quote(r.CRLFile))
	fmt.Fprintf(&b, "pid_file = %s  # Debian's; a standalone mosquitto needs a pid_file of its own for the SIGHUP\n", strconv.Quote(DefaultPIDFile))
	if o.Prefix != DefaultPrefix {
		fmt.Fprintf(&b, "# and on every agent:\n[mqtt]\nprefix = %s\n", strconv.Quote(o.Prefix))
	}
	if o.HAPrefix != DefaultHAPrefix {
		fmt.Fprintf(&b, "[homeassistant]\nprefix = %s\n", strconv.Quote(o.HAPrefix))
	}
	return b.String()
}

// Include says how to make Mosquitto load agent.conf.
func (r Result) Include() string {
	if filepath.Clean(r.Options.Out) == DefaultOut {
		return fmt.Sprintf("Debian's mosquitto.conf loads %s (include_dir %s): systemctl restart mosquitto", r.ConfFile, DefaultOut)
	}
	return fmt.Sprintf("run it standalone: mosquitto -c %s\n  or for Debian's service: cp %s %s/ (it names its files by absolute path) and systemctl restart mosquitto",
		r.ConfFile, r.ConfFile, DefaultOut)
}

// Report is the text `agent broker-config` prints.
func (r Result) Report() string {
	var b strings.Builder
	if r.Issued {
		fmt.Fprintf(&b, "issued broker certificate %s for %s, valid until %s\n", r.CertSerial, strings.Join(r.CertNames, ", "), r.CertExpires.UTC().Format(time.DateOnly))
	} else {
		fmt.Fprintf(&b, "kept broker certificate %s (%s) for %s, valid until %s\n", r.CertFile, r.CertSerial, strings.Join(r.CertNames, ", "), r.CertExpires.UTC().Format(time.DateOnly))
	}
	for _, p := range r.Written {
		fmt.Fprintf(&b, "wrote %s\n", p)
	}
	for _, p := range r.Unchanged {
		fmt.Fprintf(&b, "unchanged %s\n", p)
	}
	for _, p := range r.Removed {
		fmt.Fprintf(&b, "removed %s (no --local-plain)\n", p)
	}
	if r.KeyOwner != "" {
		fmt.Fprintf(&b, "%s is %s, mode 0640: the broker reads it after dropping to user %s\n", r.KeyFile, r.KeyOwner, r.Options.BrokerUser)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	fmt.Fprintf(&b, "\n%s\n\n%s", r.Include(), r.AgentTOML())
	return b.String()
}
