package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, environ: nil})
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("base_url: ftp://x\nvirtual_domain: id.example.org\nbogus_key: 1\n"), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "Usage"},
		{[]string{"--help"}, exitOK, "idbridge serve"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"serve"}, exitUsage, "serve needs --config"},
		{[]string{"serve", "--dev", "--config", "x"}, exitUsage, "--dev needs no --config"},
		{[]string{"serve", "--nope"}, exitUsage, "flag provided but not defined"},
		{[]string{"check-config"}, exitUsage, "needs --config"},
		{[]string{"check-config", "--config", bad}, exitFailure, "bogus_key"},
		{[]string{"check-config", "--config", filepath.Join(dir, "missing.yaml")}, exitFailure, "missing.yaml"},
		{[]string{"user"}, exitUsage, "subcommand"},
		{[]string{"user", "add", "anna"}, exitUsage, "--email, --first-name, --last-name, --password-stdin"},
		{[]string{"user", "show"}, exitUsage, "exactly one USERNAME"},
		{[]string{"user", "list"}, exitUsage, "no configuration"},
		{[]string{"keys", "rotate"}, exitUsage, "unknown keys subcommand"},
		{[]string{"audit", "--since", "-1h", "--data-dir", dir}, exitUsage, "positive"},
		{[]string{"audit", "--since", "5", "--data-dir", dir}, exitUsage, "positive duration"},
		{[]string{"audit", "--since", "7d", "--data-dir", dir}, exitOK, "EVENT"},
	} {
		code, out, errs := runCmd(t, "", tc.args...)
		if code != tc.code || !strings.Contains(out+errs, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q\nstdout: %s\nstderr: %s", tc.args, code, tc.code, tc.want, out, errs)
		}
	}
	code, _, errs := runCmd(t, "", "check-config", "--config", bad)
	if code != exitFailure || !strings.Contains(errs, "base_url") || !strings.Contains(errs, "bogus_key") {
		t.Errorf("check-config should list every mistake:\n%s", errs)
	}
}

// The CLI works on the state of a --dev data dir: add, show, lock, unlock,
// set-password, audit, delete — and a deleted name is never reissued.
func TestUserCommands(t *testing.T) {
	dir := t.TempDir()
	dd := []string{"--data-dir", dir}
	must := func(stdin string, args ...string) string {
		t.Helper()
		code, out, errs := runCmd(t, stdin, append(args, dd...)...)
		if code != exitOK {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
		}
		return out
	}
	out := must("s3cret-Passw0rd!\n", "user", "add", "Anna.K", "--email", "anna@example.org", "--first-name", "Anna", "--last-name", "K", "--password-stdin", "--admin")
	if !strings.Contains(out, "anna.k@id.localhost") {
		t.Fatalf("user add: %s", out)
	}
	out = must("", "user", "show", "ANNA.K")
	for _, want := range []string{"anna.k@id.localhost", "admins", "verified:         true"} {
		if !strings.Contains(out, want) {
			t.Errorf("user show lacks %q:\n%s", want, out)
		}
	}
	must("", "user", "lock", "anna.k")
	if out := must("", "user", "show", "anna.k"); !strings.Contains(out, "locked:           true") {
		t.Errorf("not locked:\n%s", out)
	}
	must("", "user", "unlock", "anna.k")
	must("another-Passw0rd!\n", "user", "set-password", "anna.k", "--password-stdin")
	out = must("", "audit", "--user", "anna.k", "--since", "1h")
	for _, want := range []string{"admin.create", "admin.lock", "admin.unlock", "admin.set_password"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit lacks %s:\n%s", want, out)
		}
	}
	if out := must("", "user", "list", "--query", "anna"); !strings.Contains(out, "anna.k") {
		t.Errorf("user list:\n%s", out)
	}
	must("", "user", "delete", "anna.k")
	code, _, errs := runCmd(t, "yet-another-Pw1!\n", append([]string{"user", "add", "anna.k", "--email", "a2@example.org", "--first-name", "A", "--last-name", "K", "--password-stdin"}, dd...)...)
	if code != exitFailure || !strings.Contains(errs, "never reissued") {
		t.Errorf("re-adding a deleted username: exit %d, %s", code, errs)
	}
	code, _, errs = runCmd(t, "password123\n", append([]string{"user", "add", "postmaster", "--email", "p@example.org", "--first-name", "P", "--last-name", "M", "--password-stdin"}, dd...)...)
	if code != exitFailure || !strings.Contains(errs, "reserved") {
		t.Errorf("reserved name: exit %d, %s", code, errs)
	}
}
