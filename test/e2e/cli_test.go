package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestUsage checks the help text and the exit statuses of bad usage
// (PRODUCT.md: 0 success, 1 failure, 2 bad usage).
func TestUsage(t *testing.T) {
	t.Parallel()
	help := runCLI(t, nil, "", "--help")
	if help.Code != 0 {
		t.Fatalf("idbridge --help: %s", help)
	}
	for _, want := range []string{"serve", "--dev", "check-config", "user add", "--password-stdin", "audit"} {
		if !strings.Contains(help.Stdout, want) {
			t.Errorf("idbridge --help does not mention %q:\n%s", want, help.Stdout)
		}
	}

	dir := t.TempDir()
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"serve", "--no-such-flag"},
		{"serve", "--dev", "extra-argument"},
		{"check-config"},
		{"check-config", "--config"},
		{"user"},
		{"user", "frobnicate", "--data-dir", dir},
		{"user", "add", "--data-dir", dir},
		{"user", "add", "carol", "--email", "carol@example.org", "--first-name", "Carol", "--last-name", "C", "--data-dir", dir},
		{"user", "show", "--data-dir", dir},
		{"user", "list", "--bogus", "--data-dir", dir},
		{"audit", "--since", "soon", "--data-dir", dir},
		{"audit", "--no-such-flag"},
	} {
		r := runCLI(t, nil, "pass word 1234\n", args...)
		if r.Code != 2 {
			t.Errorf("idbridge %s: exit %d, want 2 (bad usage)\n%s", strings.Join(args, " "), r.Code, r)
		}
		if r.Stderr == "" {
			t.Errorf("idbridge %s: nothing on stderr", strings.Join(args, " "))
		}
	}
}

// TestCheckConfig checks that a good file passes (exit 0) and that a broken
// one fails (exit 1) naming the key path of every mistake.
func TestCheckConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, `base_url: https://id.example.org
virtual_domain: id.example.org
mail_out:
  smarthost: {address: "smtp.example.org:587"}
forward:
  operator_address: infra@example.org
`)
	if r := runCLI(t, nil, "", "check-config", "--config", good); r.Code != 0 {
		t.Errorf("check-config on a good file: %s", r)
	}
	// IDBRIDGE_CONFIG names the file when --config is absent.
	if r := runCLI(t, baseEnv("IDBRIDGE_CONFIG="+good), "", "check-config"); r.Code != 0 {
		t.Errorf("check-config with IDBRIDGE_CONFIG: %s", r)
	}

	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, `base_url: https://id.example.org
virtual_domain: id.example.org
http:
  listn: 127.0.0.1:8080
mail_out:
  smarthost: {address: "smtp.example.org:587", tls: maybe}
forward:
  operator_address: infra@example.org
sessions:
  idle_timeout: 15
`)
	r := runCLI(t, nil, "", "check-config", "--config", bad)
	if r.Code != 1 {
		t.Fatalf("check-config on a broken file: exit %d, want 1\n%s", r.Code, r)
	}
	out := r.Stdout + r.Stderr
	for _, key := range []string{"http.listn", "mail_out.smarthost.tls", "sessions.idle_timeout"} {
		if !strings.Contains(out, key) {
			t.Errorf("check-config output does not name %s:\n%s", key, out)
		}
	}

	// An environment override is validated like the file.
	r = runCLI(t, baseEnv("IDBRIDGE_HTTP__LISTEN=nonsense"), "", "check-config", "--config", good)
	if r.Code != 1 || !strings.Contains(r.Stdout+r.Stderr, "http.listen") {
		t.Errorf("check-config with IDBRIDGE_HTTP__LISTEN=nonsense: want exit 1 naming http.listen\n%s", r)
	}

	missing := filepath.Join(dir, "missing.yaml")
	if r := runCLI(t, nil, "", "check-config", "--config", missing); r.Code != 1 {
		t.Errorf("check-config on a missing file: exit %d, want 1\n%s", r.Code, r)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestUserCommands runs the operator's commands against the --data-dir of a
// stopped and of a running dev instance, and checks their effect over HTTP:
// user add then login, unverified accounts refused, lock ends the session,
// set-password, audit, delete (the name is never reissued), and restarts that
// keep every account and print a new demo admin password that works.
func TestUserCommands(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			testUserCommands(t, b.env(t))
		})
	}
}

func testUserCommands(t *testing.T, env []string) {
	data := filepath.Join(t.TempDir(), "data")
	first := startDev(t, devOptions{DataDir: data, Env: env})
	oldAdminPass := first.AdminPass
	first.stop(t)

	// On the stopped instance's data.
	const alicePW = "correct horse battery"
	out := first.cli(t, alicePW+"\n", "user", "add", "alice", "--email", "alice@example.org",
		"--first-name", "Alice", "--last-name", "Liddell", "--password-stdin", "--admin")
	if !strings.Contains(out, "alice@id.localhost") {
		t.Errorf("user add alice: output does not give the virtual address alice@id.localhost:\n%s", out)
	}
	first.cli(t, "bob's long password\n", "user", "add", "Bob", "--email", "bob@example.org",
		"--first-name", "Bob", "--last-name", "Builder", "--password-stdin", "--unverified")

	for _, c := range []struct {
		what string
		args []string
	}{
		{"a taken username", []string{"user", "add", "alice", "--email", "other@example.org", "--first-name", "A", "--last-name", "B", "--password-stdin"}},
		{"a taken username in capitals", []string{"user", "add", "ALICE", "--email", "other@example.org", "--first-name", "A", "--last-name", "B", "--password-stdin"}},
		{"a reserved username", []string{"user", "add", "postmaster", "--email", "pm@example.org", "--first-name", "A", "--last-name", "B", "--password-stdin"}},
		{"an invalid username", []string{"user", "add", "9lives", "--email", "cat@example.org", "--first-name", "A", "--last-name", "B", "--password-stdin"}},
		{"a taken verified email", []string{"user", "add", "alice2", "--email", "ALICE@example.org", "--first-name", "A", "--last-name", "B", "--password-stdin"}},
		{"an unknown user", []string{"user", "show", "nobody"}},
		{"locking an unknown user", []string{"user", "lock", "nobody"}},
	} {
		r := runCLI(t, first.Env, "a fine long password\n", append(c.args, "--data-dir", data)...)
		if r.Code != 1 {
			t.Errorf("%s (idbridge %s): exit %d, want 1\n%s", c.what, strings.Join(c.args, " "), r.Code, r)
		}
	}

	show := first.cli(t, "", "user", "show", "alice")
	for _, want := range []string{"alice", "alice@id.localhost", "alice@example.org", "Alice", "Liddell", "admins"} {
		if !strings.Contains(show, want) {
			t.Errorf("user show alice does not mention %q:\n%s", want, show)
		}
	}
	list := first.cli(t, "", "user", "list")
	for _, want := range []string{"alice", "bob", first.AdminUser} {
		if !strings.Contains(list, want) {
			t.Errorf("user list does not list %q:\n%s", want, list)
		}
	}

	// A restart keeps every account and prints a new demo admin password.
	in := startDev(t, devOptions{DataDir: data, Env: env})
	if in.AdminUser != first.AdminUser {
		t.Errorf("demo admin after restart is %q, was %q", in.AdminUser, first.AdminUser)
	}
	if c := newClient(t, in.URL, "e2e-admin-old"); c.login(in.AdminUser, oldAdminPass) && oldAdminPass != in.AdminPass {
		t.Errorf("the demo admin's previous password still works after a restart")
	}
	if !newClient(t, in.URL, "e2e-admin").login(in.AdminUser, in.AdminPass) {
		t.Errorf("the demo admin password printed after the restart does not log in")
	}

	// user add, then login works; an unverified account cannot log in.
	alice := newClient(t, in.URL, "e2e-alice")
	if !alice.login("alice", alicePW) {
		t.Fatalf("alice (made by user add) cannot log in")
	}
	if !alice.loggedIn() {
		t.Fatalf("alice's session does not reach /account")
	}
	bob := newClient(t, in.URL, "e2e-bob")
	if bob.login("bob", "bob's long password") {
		t.Errorf("bob (user add --unverified) logged in before verifying")
	}
	if bob.login("bob@example.org", "bob's long password") {
		t.Errorf("bob logged in by an unverified email")
	}

	// Lock while the server runs: the session ends, login is refused with
	// the same answer as a wrong password.
	in.cli(t, "", "user", "lock", "alice")
	if alice.loggedIn() {
		t.Errorf("alice's session still works after user lock")
	}
	if newClient(t, in.URL, "e2e-alice-2").login("alice", alicePW) {
		t.Errorf("a locked account logged in")
	}
	if s := in.cli(t, "", "user", "show", "alice"); !regexp.MustCompile(`locked:\s+true`).MatchString(s) {
		t.Errorf("user show of a locked account says nothing locked:\n%s", s)
	}
	in.cli(t, "", "user", "unlock", "alice")
	if !alice.login("alice", alicePW) {
		t.Errorf("alice cannot log in after user unlock")
	}

	// set-password: the new one works, the old one does not.
	const alicePW2 = "a different passphrase"
	in.cli(t, alicePW2+"\n", "user", "set-password", "alice", "--password-stdin")
	if newClient(t, in.URL, "e2e-alice-3").login("alice", alicePW) {
		t.Errorf("the old password still works after user set-password")
	}
	if !newClient(t, in.URL, "e2e-alice-4").login("alice", alicePW2) {
		t.Errorf("the password given to user set-password does not work")
	}

	// audit shows alice's events and only hers.
	audit := in.cli(t, "", "audit", "--user", "alice", "--since", "1h")
	for _, ev := range []string{"admin.create", "login.success", "login.failure", "admin.lock", "admin.unlock", "admin.set_password"} {
		if !strings.Contains(audit, ev) {
			t.Errorf("audit --user alice --since 1h does not show %s:\n%s", ev, audit)
		}
	}
	if strings.Contains(audit, "bob") {
		t.Errorf("audit --user alice shows bob's events:\n%s", audit)
	}
	if all := in.cli(t, "", "audit", "--since", "1h"); !strings.Contains(all, "bob") {
		t.Errorf("audit --since 1h does not show bob's events:\n%s", all)
	}

	// delete: no login, and the name is never given out again.
	in.cli(t, "", "user", "delete", "alice")
	if newClient(t, in.URL, "e2e-alice-5").login("alice", alicePW2) {
		t.Errorf("a deleted account logged in")
	}
	r := runCLI(t, in.Env, "yet another password\n", "user", "add", "alice", "--email", "alice.again@example.org",
		"--first-name", "Alice", "--last-name", "Again", "--password-stdin", "--data-dir", data)
	if r.Code != 1 {
		t.Errorf("user add of a deleted username: exit %d, want 1 (never reissued)\n%s", r.Code, r)
	}

	// Another restart keeps every account; the new demo password works.
	before := in.cli(t, "", "user", "list")
	in.stop(t)
	again := startDev(t, devOptions{DataDir: data, Env: env})
	if after := again.cli(t, "", "user", "list"); after != before {
		t.Errorf("user list changed across a restart:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if !newClient(t, again.URL, "e2e-admin-3").login(again.AdminUser, again.AdminPass) {
		t.Errorf("the demo admin password printed after the second restart does not log in")
	}
	if p := newClient(t, again.URL, "e2e").get("/readyz"); p.Status != http.StatusOK {
		t.Errorf("/readyz after restart: %d", p.Status)
	}
}
