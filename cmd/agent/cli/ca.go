package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgeagent/agent/pki"
)

const caUsage = `Usage:
  agent ca init   --dir DIR [--cn NAME] [--days 3650] [--key ec|rsa2048|rsa4096] [--force]
  agent ca issue  --dir DIR --cn NAME [--server] [--san name,ip,...] [--days N] [--key ec|rsa2048|rsa4096] --out PREFIX
  agent ca token  --dir DIR --id ID [--ttl 24h]
  agent ca revoke --dir DIR (--id ID | --serial S)
  agent ca list   --dir DIR [--json]
  agent ca crl    --dir DIR

The CA directory holds ca.crt, ca.key (0600), ca.crl and index.json.
`

// caCmd is `agent ca`: the fleet's certificate authority, without openssl.
func caCmd(args []string, stdout, stderr io.Writer, now func() time.Time) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, caUsage)
		return ExitRefused
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("agent ca "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "the CA directory")
	var run func() error
	switch sub {
	case "init":
		cn := fs.String("cn", "Edge Fleet CA", "the CA's common name")
		days := fs.Int("days", 3650, "validity in days")
		key := fs.String("key", "ec", "key type: ec (P-256), rsa2048 or rsa4096")
		force := fs.Bool("force", false, "replace an existing CA (every certificate it issued stops verifying)")
		run = func() error {
			kt, err := pki.ParseKeyType(*key)
			if err != nil {
				return err
			}
			d, err := pki.InitDir(*dir, pki.InitOptions{CN: *cn, Days: *days, Key: kt, Force: *force}, now())
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "CA %q in %s, valid until %s\n  give %s to every device and to the broker (cafile)\n",
				d.CA.Cert.Subject.CommonName, d.Path, d.CA.Cert.NotAfter.UTC().Format(time.DateOnly), d.Path+"/"+pki.CertFile)
			return nil
		}
	case "issue":
		cn := fs.String("cn", "", "the certificate's common name (the device id, or the broker's host name with --server)")
		server := fs.Bool("server", false, "a server certificate (serverAuth; the CN is also a SAN)")
		sans := fs.String("san", "", "extra subjectAltNames: DNS names and IP addresses, comma-separated")
		days := fs.Int("days", 0, "validity in days (default 365 for servers, 90 for clients)")
		key := fs.String("key", "ec", "key type: ec (P-256), rsa2048 or rsa4096")
		out := fs.String("out", "", "write PREFIX.crt and PREFIX.key (0600)")
		run = func() error {
			if *out == "" {
				return errors.New("--out PREFIX is required (writes PREFIX.crt and PREFIX.key)")
			}
			kt, err := pki.ParseKeyType(*key)
			if err != nil {
				return err
			}
			for _, p := range []string{*out + ".crt", *out + ".key"} {
				if _, err := os.Lstat(p); err == nil {
					return fmt.Errorf("%s exists: remove it or choose another --out", p)
				}
			}
			d, err := pki.OpenDir(*dir)
			if err != nil {
				return err
			}
			var names []string
			if *sans != "" {
				names = strings.Split(*sans, ",")
			}
			p, err := d.Issue(pki.IssueOptions{CN: *cn, Server: *server, SANs: names, Days: *days, Key: kt}, now())
			if err != nil {
				return err
			}
			if err := pki.WritePair(p, *out); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s.crt and %s.key: CN=%s serial %s, valid until %s\n", *out, *out, *cn,
				pki.FormatSerial(p.Cert.SerialNumber), p.Cert.NotAfter.UTC().Format(time.DateOnly))
			return nil
		}
	case "token":
		id := fs.String("id", "", "the device id the token enrolls (the certificate's CN)")
		ttl := fs.Duration("ttl", 24*time.Hour, "how long the token stays valid")
		run = func() error {
			d, err := pki.OpenDir(*dir)
			if err != nil {
				return err
			}
			tok, err := d.NewToken(*id, *ttl, now())
			if err != nil {
				return err
			}
			// The token alone on stdout, for scripts; the hint on stderr.
			fmt.Fprintln(stdout, tok)
			fmt.Fprintf(stderr, "one-time token for %q, valid until %s; on the device:\n  agent enroll --ca ca.crt --token TOKEN\n",
				*id, now().Add(*ttl).UTC().Format(time.RFC3339))
			return nil
		}
	case "revoke":
		id := fs.String("id", "", "revoke every valid certificate with this CN")
		serial := fs.String("serial", "", "revoke the certificate with this serial (hex)")
		run = func() error {
			if (*id == "") == (*serial == "") {
				return errors.New("give one of --id ID or --serial S")
			}
			var sn *big.Int
			if *serial != "" {
				var err error
				if sn, err = pki.ParseSerial(*serial); err != nil {
					return fmt.Errorf("--serial: %w", err)
				}
			}
			d, err := pki.OpenDir(*dir)
			if err != nil {
				return err
			}
			recs, err := d.Revoke(*id, sn, now())
			if err != nil {
				return err
			}
			for _, r := range recs {
				fmt.Fprintf(stdout, "revoked %s (CN=%s)\n", pki.FormatSerial(r.Serial), r.CN)
			}
			fmt.Fprintf(stdout, "%s/%s updated: a master with crl.file set installs it and reloads Mosquitto within crl.check\n", d.Path, pki.CRLFile)
			return nil
		}
	case "list":
		asJSON := fs.Bool("json", false, "print JSON")
		run = func() error {
			d, err := pki.OpenDir(*dir)
			if err != nil {
				return err
			}
			recs, err := d.List()
			if err != nil {
				return err
			}
			return printRecords(stdout, recs, *asJSON, now())
		}
	case "crl":
		run = func() error {
			d, err := pki.OpenDir(*dir)
			if err != nil {
				return err
			}
			if _, err := d.WriteCRL(now()); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s/%s regenerated, valid for %v\n", d.Path, pki.CRLFile, pki.CRLValidity)
			return nil
		}
	default:
		fmt.Fprintf(stderr, "agent ca: unknown command %q\n\n%s", sub, caUsage)
		return ExitRefused
	}
	if err := fs.Parse(args); err != nil {
		return ExitRefused
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "agent ca %s: unexpected argument %q\n", sub, fs.Arg(0))
		return ExitRefused
	}
	if *dir == "" {
		fmt.Fprintf(stderr, "agent ca %s: --dir DIR is required (the CA directory)\n", sub)
		return ExitRefused
	}
	if err := run(); err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "ca ") && !strings.HasPrefix(msg, "ca:") {
			msg = "ca " + sub + ": " + msg // pki's errors name the operation already
		}
		fmt.Fprintf(stderr, "agent %s\n", msg)
		return ExitFailure
	}
	return ExitOK
}

type recordJSON struct {
	Serial    string     `json:"serial"`
	CN        string     `json:"cn"`
	Kind      string     `json:"kind"`
	NotBefore time.Time  `json:"not_before"`
	NotAfter  time.Time  `json:"not_after"`
	Revoked   *time.Time `json:"revoked,omitempty"`
	Via       string     `json:"via"`
}

func printRecords(w io.Writer, recs []pki.Record, asJSON bool, now time.Time) error {
	if asJSON {
		out := make([]recordJSON, 0, len(recs))
		for _, r := range recs {
			j := recordJSON{Serial: pki.FormatSerial(r.Serial), CN: r.CN, Kind: "client", NotBefore: r.NotBefore.UTC(), NotAfter: r.NotAfter.UTC(), Via: r.Via}
			if r.Server {
				j.Kind = "server"
			}
			if !r.Revoked.IsZero() {
				t := r.Revoked.UTC()
				j.Revoked = &t
			}
			out = append(out, j)
		}
		return printJSONList(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIAL\tCN\tKIND\tEXPIRES\tSTATE\tVIA")
	for _, r := range recs {
		kind := "client"
		if r.Server {
			kind = "server"
		}
		state := "valid"
		switch {
		case !r.Revoked.IsZero():
			state = "revoked " + r.Revoked.UTC().Format(time.DateOnly)
		case now.After(r.NotAfter):
			state = "expired"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", pki.FormatSerial(r.Serial), r.CN, kind, r.NotAfter.UTC().Format(time.DateOnly), state, r.Via)
	}
	return tw.Flush()
}
