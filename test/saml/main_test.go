package saml

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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
		fmt.Fprintln(os.Stderr, "test/saml:", err)
		return 1
	}
	binary = bin
	return m.Run()
}

// baseEnv is the environment of every idbridge process: the test's own,
// without any IDBRIDGE_* setting of the developer's shell.
func baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IDBRIDGE_") {
			out = append(out, kv)
		}
	}
	return out
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// spConf is one entry of saml.service_providers.
type spConf struct {
	Name, EntityID, ACSURL, SLOURL, CertificateFile, MetadataFile string
	NameID, Attributes, Sign, DefaultRelayState                   string
}

// idb is a running `idbridge serve --config FILE`.
type idb struct {
	URL    string // base_url, http://127.0.0.1:PORT
	Dir    string
	Config string

	cmd    *exec.Cmd
	stderr *testlib.SyncBuffer
	done   chan struct{}
	err    error
}

// password is every test account's password.
const password = "correct horse battery staple"

// startIDB writes a config file with the service providers sps and starts
// `idbridge serve --config FILE`, waiting until /readyz answers. The process
// is stopped by its PID when the test ends.
func startIDB(t *testing.T, sps ...spConf) *idb {
	t.Helper()
	dir := t.TempDir()
	addr := testlib.FreePort(t)
	in := &idb{URL: "http://" + addr, Dir: dir, Config: filepath.Join(dir, "idbridge.yaml"),
		stderr: &testlib.SyncBuffer{}, done: make(chan struct{})}
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "base_url: %s\nvirtual_domain: id.example.org\nstore: %s\ndata_dir: %s\n",
		q(in.URL), q("sqlite:"+filepath.Join(dir, "db")), q(filepath.Join(dir, "data")))
	fmt.Fprintf(&b, "http:\n  listen: %s\n", q(addr))
	// Nothing listens on the smarthost: no test here needs idbridge's mail.
	fmt.Fprintf(&b, "mail_out:\n  smarthost: {address: %s, tls: none}\n", q(testlib.FreePort(t)))
	b.WriteString("forward:\n  listen: \"\"\n")
	b.WriteString("accounts:\n  argon2: {memory_kib: 64, iterations: 1, parallelism: 1, allow_weak: true}\n")
	if len(sps) > 0 {
		b.WriteString("saml:\n  service_providers:\n")
	}
	for _, sp := range sps {
		fmt.Fprintf(&b, "    - name: %s\n", q(sp.Name))
		for _, kv := range [][2]string{
			{"entity_id", sp.EntityID}, {"acs_url", sp.ACSURL}, {"slo_url", sp.SLOURL},
			{"certificate_file", sp.CertificateFile}, {"metadata_file", sp.MetadataFile},
			{"name_id", sp.NameID}, {"attributes", sp.Attributes}, {"sign", sp.Sign},
			{"default_relay_state", sp.DefaultRelayState},
		} {
			if kv[1] != "" {
				fmt.Fprintf(&b, "      %s: %s\n", kv[0], q(kv[1]))
			}
		}
	}
	if err := os.WriteFile(in.Config, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	in.start(t)
	return in
}

func (in *idb) start(t *testing.T) {
	t.Helper()
	in.stderr, in.done = &testlib.SyncBuffer{}, make(chan struct{})
	in.cmd = exec.Command(binary, "serve", "--config", in.Config)
	in.cmd.Env = baseEnv()
	in.cmd.Stdout = in.stderr
	in.cmd.Stderr = in.stderr
	if err := in.cmd.Start(); err != nil {
		t.Fatalf("start idbridge serve: %v", err)
	}
	go func() {
		in.err = in.cmd.Wait()
		close(in.done)
	}()
	t.Cleanup(func() { in.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-in.done:
			cfg, _ := os.ReadFile(in.Config)
			t.Fatalf("idbridge serve exited: %v\nconfig:\n%s\noutput:\n%s", in.err, cfg, tail(in.stderr.String(), 4000))
		default:
		}
		resp, err := http.Get(in.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("idbridge serve not ready in 30 s: %v\n%s", err, tail(in.stderr.String(), 4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the process by its PID: SIGTERM, then SIGKILL after 10 s.
func (in *idb) stop(t *testing.T) {
	select {
	case <-in.done:
		return
	default:
	}
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(10 * time.Second):
		in.cmd.Process.Kill()
		<-in.done
		t.Errorf("idbridge serve did not stop within 10 s of SIGTERM")
	}
	if t.Failed() {
		t.Logf("idbridge serve output (tail):\n%s", tail(in.stderr.String(), 6000))
	}
}

// cli runs `idbridge ARGS --config FILE` and fails the test unless it exits 0.
func (in *idb) cli(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := in.tryCLI(stdin, args...)
	if err != nil {
		t.Fatalf("idbridge %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (in *idb) tryCLI(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append(args, "--config", in.Config)...)
	cmd.Env = baseEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return "", err
	}
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

// user is a test account.
type user struct {
	Name, ID, First, Last, Email string
}

func (u user) virtual() string { return u.Name + "@id.example.org" }

var idLineRE = regexp.MustCompile(`(?m)^id:\s+(\S+)\s*$`)

// addUser creates an account with `idbridge user add` (verified unless
// unverified) and reads its stable id from `idbridge user show`.
func (in *idb) addUser(t *testing.T, name string, unverified bool) user {
	t.Helper()
	u := user{Name: name, First: "Ann-" + name, Last: "O'Brien & <Co>", Email: name + "@gmail.test"}
	args := []string{"user", "add", name, "--email", u.Email, "--first-name", u.First, "--last-name", u.Last, "--password-stdin"}
	if unverified {
		args = append(args, "--unverified")
	}
	in.cli(t, password+"\n", args...)
	m := idLineRE.FindStringSubmatch(in.cli(t, "", "user", "show", name))
	if m == nil {
		t.Fatalf("user show %s prints no id line", name)
	}
	u.ID = m[1]
	return u
}
