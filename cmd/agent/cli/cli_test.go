package cli

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
)

func TestUsage(t *testing.T) {
	cases := []struct {
		args     []string
		code     int
		out, err string
	}{
		{nil, ExitRefused, "", "Usage:"},
		{[]string{"help"}, ExitOK, "agent run", ""},
		{[]string{"version"}, ExitOK, "agent v9", ""},
		{[]string{"frobnicate"}, ExitRefused, "", `unknown command "frobnicate"`},
		{[]string{"run", "--nope"}, ExitRefused, "", "flag provided but not defined: -nope"},
		{[]string{"run", "extra"}, ExitRefused, "", `unexpected argument "extra"`},
		{[]string{"run", "--log-level", "loud"}, ExitRefused, "", `--log-level "loud"`},
		{[]string{"run", "--config", "/nonexistent/agent.toml"}, ExitRefused, "", "config /nonexistent/agent.toml: file not found"},
		{[]string{"discover", "--config", "/nonexistent/agent.toml"}, ExitRefused, "", "config /nonexistent/agent.toml: file not found"},
		{[]string{"discover", "--ip-version", "5"}, ExitRefused, "", "--ip-version 4, 6 or both"},
		{[]string{"discover", "extra"}, ExitRefused, "", "takes only flags"},
	}
	for _, tc := range cases {
		var out, errb bytes.Buffer
		code := Run(context.Background(), tc.args, &out, &errb, "v9")
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
			t.Errorf("Run(%q) = %d\nstdout: %s\nstderr: %s\nwant %d, %q, %q", tc.args, code, out.String(), errb.String(), tc.code, tc.out, tc.err)
		}
	}
}

func TestParseArgs(t *testing.T) {
	got, err := parseArgs([]string{"actuator=relay1", "value=on", "n=3", "b=true", `s="x y"`, "o={\"a\":1}"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"actuator": "relay1", "value": "on", "n": float64(3), "b": true, "s": "x y", "o": map[string]any{"a": float64(1)}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parseArgs = %v, want %v", got, want)
	}
	for _, bad := range []string{"relay1", "=on"} {
		if _, err := parseArgs([]string{bad}); err == nil {
			t.Errorf("parseArgs(%q) accepted", bad)
		}
	}
}
