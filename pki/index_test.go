package pki

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const goodIndex = `{
  "version": 1,
  "crl_number": 4,
  "certs": [
    {"serial": "3a:7f:09", "cn": "dev1", "not_before": "2026-03-01T11:59:00Z", "not_after": "2026-05-30T12:00:00Z", "via": "enroll"},
    {"serial": "0B", "cn": "broker.lan", "server": true, "not_before": "2026-03-01T11:59:00Z", "not_after": "2027-03-01T12:00:00Z", "revoked": "2026-03-02T00:00:00Z", "via": "issue"}
  ],
  "tokens": [
    {"sha256": "` + "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" + `", "id": "dev2", "created": "2026-03-01T12:00:00Z", "expires": "2026-03-02T12:00:00Z"}
  ]
}
`

var badIndexes = []struct {
	name, data, want string
}{
	{"empty", ``, "truncated or empty"},
	{"truncated", goodIndex[:len(goodIndex)/2], "truncated"},
	{"null", `null`, "version 0, want 1"},
	{"array", `[]`, "cannot unmarshal array"},
	{"unknown key", `{"version":1,"serials":[]}`, `unknown field "serials"`},
	{"trailing data", `{"version":1} {}`, "extra data"},
	{"future version", `{"version":2}`, "version 2, want 1"},
	{"negative crl number", `{"version":1,"crl_number":-1}`, "negative"},
	{"bad serial", `{"version":1,"certs":[{"serial":"xyz","cn":"a","not_before":"2026-01-01T00:00:00Z","not_after":"2027-01-01T00:00:00Z","via":"issue"}]}`, `certs[0]: serial "xyz"`},
	{"duplicate serial", `{"version":1,"certs":[{"serial":"0a","cn":"a","not_before":"2026-01-01T00:00:00Z","not_after":"2027-01-01T00:00:00Z","via":"issue"},{"serial":"0A","cn":"b","not_before":"2026-01-01T00:00:00Z","not_after":"2027-01-01T00:00:00Z","via":"issue"}]}`, "appears twice"},
	{"empty cn", `{"version":1,"certs":[{"serial":"0a","cn":"","not_before":"2026-01-01T00:00:00Z","not_after":"2027-01-01T00:00:00Z","via":"issue"}]}`, "empty cn"},
	{"bad via", `{"version":1,"certs":[{"serial":"0a","cn":"a","not_before":"2026-01-01T00:00:00Z","not_after":"2027-01-01T00:00:00Z","via":"magic"}]}`, `via "magic"`},
	{"no dates", `{"version":1,"certs":[{"serial":"0a","cn":"a","via":"issue"}]}`, "not_before and not_after"},
	{"bad time", `{"version":1,"certs":[{"serial":"0a","cn":"a","not_before":"yesterday","not_after":"2027-01-01T00:00:00Z","via":"issue"}]}`, "cannot parse"},
	{"bad hash", `{"version":1,"tokens":[{"sha256":"abc","id":"dev1","expires":"2027-01-01T00:00:00Z"}]}`, "64 lower-case hex"},
	{"bad token id", `{"version":1,"tokens":[{"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","id":"a b","expires":"2027-01-01T00:00:00Z"}]}`, `tokens[0]: device id "a b"`},
	{"token without expiry", `{"version":1,"tokens":[{"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","id":"ab"}]}`, "expires not set"},
}

func TestParseIndex(t *testing.T) {
	ix, err := parseIndex([]byte(goodIndex))
	if err != nil {
		t.Fatal(err)
	}
	if ix.CRLNumber != 4 || len(ix.Certs) != 2 || len(ix.Tokens) != 1 || ix.Certs[0].Serial != "3A7F09" {
		t.Errorf("parsed %+v", ix)
	}
	for _, tt := range badIndexes {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseIndex([]byte(tt.data))
			wantErr(t, err, nil, tt.want)
		})
	}
}

// TestBadIndexFile: a damaged index.json stops every operation with an
// error naming the file and the way out, and is left as it was.
func TestBadIndexFile(t *testing.T) {
	d := newDir(t)
	bad := []byte(`{"version":1,"certs":[`)
	if err := os.WriteFile(d.file(IndexFile), bad, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := OpenDir(d.Path)
	wantErr(t, err, nil, d.file(IndexFile)+": truncated or empty: repair it by hand or restore it from a backup")
	_, err = d.NewToken("dev1", 0, t0)
	wantErr(t, err, nil, d.file(IndexFile))
	_, err = d.List()
	wantErr(t, err, nil, "restore it from a backup")
	if got, _ := os.ReadFile(d.file(IndexFile)); !bytes.Equal(got, bad) {
		t.Error("a failed operation rewrote the damaged index")
	}
}

// TestLeftoverTemp: a crash mid-write leaves a .index.json.tmp-* beside
// the index; the index still reads, and the next write clears the debris.
func TestLeftoverTemp(t *testing.T) {
	d := newDir(t)
	if _, err := d.NewToken("dev1", 0, t0); err != nil {
		t.Fatal(err)
	}
	debris := []string{filepath.Join(d.Path, ".index.json.tmp-123"), filepath.Join(d.Path, ".ca.key.tmp-9")}
	for _, p := range debris {
		if err := os.WriteFile(p, []byte(`{"version":1,"tok`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d2, err := OpenDir(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d2.NewToken("dev2", 0, t0); err != nil {
		t.Fatal(err)
	}
	for _, p := range debris {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there (%v)", filepath.Base(p), err)
		}
	}
	data, _ := os.ReadFile(d.file(IndexFile))
	ix, err := parseIndex(data)
	if err != nil || len(ix.Tokens) != 2 {
		t.Errorf("index after the debris: %v, %d tokens, want 2", err, len(ix.Tokens))
	}
	ents, _ := os.ReadDir(d.Path)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{CRLFile, CertFile, KeyFile, IndexFile, LockFile}; strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("directory holds %v, want %v", names, want)
	}
}

// FuzzLoadIndex: no input panics the loader, and whatever it accepts
// survives a write and a re-read unchanged.
func FuzzLoadIndex(f *testing.F) {
	f.Add([]byte(goodIndex))
	for _, tt := range badIndexes {
		f.Add([]byte(tt.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := parseIndex(data)
		if err != nil {
			return
		}
		out, err := ix.marshal()
		if err != nil {
			t.Fatalf("marshal what was parsed: %v", err)
		}
		again, err := parseIndex(out)
		if err != nil {
			t.Fatalf("re-read what was written: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(normalise(ix), normalise(again)) {
			t.Errorf("round trip changed the index:\n%+v\n%+v", ix, again)
		}
	})
}

// normalise drops what JSON does not keep: monotonic clock readings,
// locations, nil versus empty slices.
func normalise(ix *index) index {
	c := *ix
	c.Certs = append([]indexCert{}, ix.Certs...)
	c.Tokens = append([]indexToken{}, ix.Tokens...)
	for i := range c.Certs {
		for _, tm := range []*time.Time{&c.Certs[i].NotBefore, &c.Certs[i].NotAfter, &c.Certs[i].Revoked} {
			*tm = tm.UTC()
		}
	}
	for i := range c.Tokens {
		for _, tm := range []*time.Time{&c.Tokens[i].Created, &c.Tokens[i].Expires, &c.Tokens[i].Used} {
			*tm = tm.UTC()
		}
	}
	return c
}
