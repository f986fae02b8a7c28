package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/idbridge/idbridge/internal/testlib"
)

// binary is the idbridge program built by TestMain.
var binary string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	// IDBRIDGE_E2E_BINARY tests a binary built elsewhere (a release build).
	bin, remove, err := testlib.IdbridgeBinary()
	defer remove()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	binary = bin
	return m.Run()
}

// withoutEnv returns environ without the variables named (or, for a name
// ending in "_", every variable with that prefix).
func withoutEnv(environ []string, names ...string) []string {
	var out []string
next:
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		for _, n := range names {
			if k == n || (strings.HasSuffix(n, "_") && strings.HasPrefix(k, n)) {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// baseEnv is the environment of every idbridge process the tests start: the
// test's own, without any IDBRIDGE_* setting of the developer's shell.
func baseEnv(extra ...string) []string {
	return append(withoutEnv(os.Environ(), "IDBRIDGE_"), extra...)
}

// tail returns the last n bytes of s, for failure messages.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// instance is a running `idbridge serve --dev`.
type instance struct {
	URL       string // http://127.0.0.1:PORT
	SMTP      string // 127.0.0.1:PORT
	AdminUser string
	AdminPass string
	DataDir   string
	Env       []string // the environment it runs with (CLI commands use the same)

	cmd     *exec.Cmd
	stdout  *testlib.SyncBuffer
	stderr  *testlib.SyncBuffer
	done    chan struct{}
	waitErr error
	stopped bool
}

// devOptions say how to start an instance.
type devOptions struct {
	DataDir string   // "" : a new temporary folder
	Env     []string // extra environment (IDBRIDGE_STORE=postgres://…, overrides)
}

// The lines `serve --dev` prints, exactly as PRODUCT.md gives them.
var (
	lineListening = regexp.MustCompile(`^idbridge: listening on (http://127\.0\.0\.1:([0-9]{1,5}))$`)
	lineSMTP      = regexp.MustCompile(`^idbridge: smtp on (127\.0\.0\.1:([0-9]{1,5}))$`)
	lineAdmin     = regexp.MustCompile(`^idbridge: demo admin: ([a-z][a-z0-9._-]{2,31}) / (\S+)$`)
	lineData      = regexp.MustCompile(`^idbridge: data in (\S.*)$`)
)

// startDev starts `idbridge serve --dev --listen 127.0.0.1:0 --smtp-listen
// 127.0.0.1:0 --data-dir DIR`, reads and checks the four lines it prints, and
// stops it with SIGTERM when the test ends (checking that it exits promptly
// and with status 0).
func startDev(t *testing.T, o devOptions) *instance {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = filepath.Join(t.TempDir(), "data")
	}
	in := &instance{
		DataDir: o.DataDir,
		Env:     baseEnv(o.Env...),
		stdout:  &testlib.SyncBuffer{},
		stderr:  &testlib.SyncBuffer{},
		done:    make(chan struct{}),
	}
	in.cmd = exec.Command(binary, "serve", "--dev", "--listen", "127.0.0.1:0",
		"--smtp-listen", "127.0.0.1:0", "--data-dir", o.DataDir)
	in.cmd.Env = in.Env
	in.cmd.Stderr = in.stderr
	pipe, err := in.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := in.cmd.Start(); err != nil {
		t.Fatalf("start idbridge serve --dev: %v", err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			in.stdout.Write([]byte(sc.Text() + "\n"))
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
		// Wait only after the pipe is drained (os/exec's rule).
		in.waitErr = in.cmd.Wait()
		close(in.done)
	}()
	t.Cleanup(func() { in.stop(t) })

	// Read up to the last line, "data in"; then check all four, in order.
	var got []string
	timeout := time.After(60 * time.Second)
	for len(got) < 4 && (len(got) == 0 || !lineData.MatchString(got[len(got)-1])) {
		select {
		case l, ok := <-lines:
			if !ok {
				<-in.done
				t.Fatalf("idbridge serve --dev exited (%v) after printing %q\nstderr:\n%s", in.waitErr, got, tail(in.stderr.String(), 4000))
			}
			got = append(got, l)
		case <-timeout:
			t.Fatalf("idbridge serve --dev printed only %q in 60 s\nstderr:\n%s", got, tail(in.stderr.String(), 4000))
		}
	}
	in.parseLines(t, got)
	t.Logf("idbridge serve --dev at %s (smtp %s), printed its lines %v after start", in.URL, in.SMTP, time.Since(start).Round(time.Millisecond))
	return in
}

// parseLines checks the lines `serve --dev` printed against PRODUCT.md:
// four lines, in this order and form. A missing smtp line is an error, but
// the test goes on (the other three are enough to drive the pages).
func (in *instance) parseLines(t *testing.T, got []string) {
	t.Helper()
	want := []struct {
		re   *regexp.Regexp
		form string
	}{
		{lineListening, "idbridge: listening on http://HOST:PORT"},
		{lineSMTP, "idbridge: smtp on HOST:PORT"},
		{lineAdmin, "idbridge: demo admin: USERNAME / PASSWORD"},
		{lineData, "idbridge: data in DIR"},
	}
	i := 0
	for _, w := range want {
		if i >= len(got) || !w.re.MatchString(got[i]) {
			t.Errorf("serve --dev printed %q: line %d is not `%s`", got, i+1, w.form)
			if w.re == lineSMTP {
				continue // look for the next form on the same line
			}
			t.FailNow()
		}
		m := w.re.FindStringSubmatch(got[i])
		switch w.re {
		case lineListening:
			in.URL = m[1]
			if m[2] == "0" {
				t.Errorf("%q: port 0 was not replaced by the bound port", got[i])
			}
		case lineSMTP:
			in.SMTP = m[1]
			if m[2] == "0" {
				t.Errorf("%q: port 0 was not replaced by the bound port", got[i])
			}
		case lineAdmin:
			in.AdminUser, in.AdminPass = m[1], m[2]
		case lineData:
			if filepath.Clean(m[1]) != filepath.Clean(in.DataDir) {
				t.Errorf("%q: want the --data-dir %s", got[i], in.DataDir)
			}
		}
		i++
	}
}

// stop sends SIGTERM and checks that the process exits promptly with status 0.
func (in *instance) stop(t *testing.T) {
	t.Helper()
	if in.stopped {
		return
	}
	in.stopped = true
	select {
	case <-in.done:
		t.Errorf("idbridge serve exited before the test stopped it: %v\nstderr:\n%s", in.waitErr, tail(in.stderr.String(), 4000))
		return
	default:
	}
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
	const prompt = 5 * time.Second
	start := time.Now()
	select {
	case <-in.done:
		if in.waitErr != nil {
			t.Errorf("idbridge serve after SIGTERM: %v (want exit status 0)\nstderr:\n%s", in.waitErr, tail(in.stderr.String(), 4000))
		}
	case <-time.After(prompt):
		in.cmd.Process.Kill()
		<-in.done
		t.Errorf("idbridge serve did not exit within %v of SIGTERM; killed\nstderr:\n%s", prompt, tail(in.stderr.String(), 4000))
		return
	}
	if t.Failed() {
		t.Logf("idbridge serve stderr (tail):\n%s", tail(in.stderr.String(), 6000))
	}
	t.Logf("idbridge serve exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
}

// cliResult is what one run of the command line gave.
type cliResult struct {
	Code           int
	Stdout, Stderr string
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// runCLI runs the idbridge binary with args, stdin and environ (nil: the
// base environment), and returns its exit status and output.
func runCLI(t *testing.T, environ []string, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	if environ == nil {
		environ = baseEnv()
	}
	cmd.Env = environ
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := cliResult{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.Code = ee.ExitCode()
	default:
		t.Fatalf("idbridge %s: %v\n%s", strings.Join(args, " "), err, res)
	}
	return res
}

// cli runs a data command against the instance's --data-dir, with its
// environment, and fails the test unless it exits 0.
func (in *instance) cli(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	args = append(args, "--data-dir", in.DataDir)
	r := runCLI(t, in.Env, stdin, args...)
	if r.Code != 0 {
		t.Fatalf("idbridge %s: %s", strings.Join(args, " "), r)
	}
	return r.Stdout
}

// Store back-ends the tests run on.
type backend struct {
	name string
	// env returns the environment that points serve at a fresh store
	// (none for SQLite in --data-dir); it skips the test when the back-end
	// is unavailable.
	env func(t *testing.T) []string
}

var backends = []backend{
	{"sqlite", func(*testing.T) []string { return nil }},
	{"postgres", postgresEnv},
}

// postgresEnv creates a fresh database on the server IDBRIDGE_TEST_POSTGRES
// names, drops it when the test ends, and returns IDBRIDGE_STORE=… for it.
// Without IDBRIDGE_TEST_POSTGRES the test is skipped, except under CI.
func postgresEnv(t *testing.T) []string {
	t.Helper()
	dsn := os.Getenv("IDBRIDGE_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("IDBRIDGE_TEST_POSTGRES is unset under CI: the PostgreSQL run must not be skipped")
		}
		t.Skip("IDBRIDGE_TEST_POSTGRES is unset (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("IDBRIDGE_TEST_POSTGRES=%q is not a postgres:// URL", dsn)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "idbridge_e2e_" + hex.EncodeToString(b[:])

	admin := *u
	admin.Path = "/postgres"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		t.Fatalf("connect to PostgreSQL (IDBRIDGE_TEST_POSTGRES): %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin.String())
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	db := *u
	db.Path = "/" + name
	return []string{"IDBRIDGE_STORE=" + db.String()}
}

// drain is io.Copy to nowhere, for response bodies.
func drain(r io.Reader) { io.Copy(io.Discard, r) }
