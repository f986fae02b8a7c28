package mail

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/idbridge/idbridge/internal/testlib"
)

// TB is the part of testing.TB the helpers use, so that the benchmark
// program (bench/mail) can run them outside `go test`.
type TB = testlib.TB

// FindProgram returns the path of a program on PATH or in the sbin folders
// where Debian puts Postfix and slapd, or "" when it is absent.
func FindProgram(name string) string { return testlib.FindProgram(name) }

func mustProgram(t TB, name string) string {
	t.Helper()
	p := FindProgram(name)
	if p == "" {
		t.Fatalf("%s is not installed (scripts/install-peers)", name)
	}
	return p
}

// PublicDir makes a temporary folder with the given mode that daemons which
// drop privileges can reach (testlib.PublicDir).
func PublicDir(t TB, prefix string, mode os.FileMode) string {
	t.Helper()
	return testlib.PublicDir(t, prefix, mode)
}

// FreeAddr returns "127.0.0.1:PORT" with a port that was free a moment ago.
func FreeAddr(t TB) string {
	t.Helper()
	return testlib.FreePort(t)
}

// Port is the port number of a host:port address.
func Port(addr string) int { return testlib.Port(addr) }

// WaitPort polls until something accepts connections on addr.
func WaitPort(t TB, addr string, timeout time.Duration) {
	t.Helper()
	testlib.WaitPort(t, addr, timeout)
}

// Poll calls f until it returns true or timeout passes; it reports whether
// f returned true.
func Poll(timeout, every time.Duration, f func() bool) bool { return testlib.Poll(timeout, every, f) }

// BuildIdbridge builds ./cmd/idbridge into dir and returns the binary's path.
func BuildIdbridge(dir string) (string, error) { return testlib.BuildIdbridge(dir) }

// Config is what an idbridge instance of the tests is configured with.
type Config struct {
	VirtualDomain string // default id.test
	Hostname      string // forward.hostname; default mx.id.test
	SRSDomain     string // default: the virtual domain
	Operator      string // forward.operator_address; default ops@operator.test
	DNS           string // dns.servers[0], "127.0.0.1:PORT"; empty: none
	Networks      []string
	Domains       []string // forward.allow.domains
	Delivery      string   // "direct" (default) or "smarthost"
	Smarthost     string   // forward.smarthost.address (tls: none)
	DeliveryPort  int      // forward.delivery_port
	DKIMSelector  string
	Socketmap     bool   // listen on forward.socketmap_listen
	NoSMTP        bool   // forward.listen: ""
	MailOut       string // mail_out.smarthost.address; default: a closed port
	LogLevel      string // default info
}

// Idbridge is one configured instance of the real binary.
type Idbridge struct {
	Bin        string
	Dir        string // data_dir; the config file and logs are in it too
	ConfigFile string
	SMTPAddr   string // forward.listen
	Socketmap  string // forward.socketmap_listen, or ""
	HTTPAddr   string
	Log        string // stdout and stderr of every start, appended

	t    TB
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// NewIdbridge writes the config of an instance (data in a new temp folder)
// without starting it, so that accounts can be added first.
func NewIdbridge(t TB, bin string, c Config) *Idbridge {
	t.Helper()
	dir := PublicDir(t, "data", 0o755)
	d := &Idbridge{Bin: bin, Dir: dir, ConfigFile: filepath.Join(dir, "idbridge.yaml"),
		HTTPAddr: FreeAddr(t), Log: filepath.Join(dir, "idbridge.log"), t: t}
	if !c.NoSMTP {
		d.SMTPAddr = FreeAddr(t)
	}
	if c.Socketmap {
		d.Socketmap = FreeAddr(t)
	}
	if c.VirtualDomain == "" {
		c.VirtualDomain = "id.test"
	}
	if c.Hostname == "" {
		c.Hostname = "mx." + c.VirtualDomain
	}
	if c.Operator == "" {
		c.Operator = "ops@operator.test"
	}
	if c.Delivery == "" {
		c.Delivery = "direct"
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	mailOut := c.MailOut
	if mailOut == "" {
		mailOut = FreeAddr(t) // nothing listens: idbridge's own mail stays queued
	}
	q := strconv.Quote
	list := func(xs []string) string {
		var qs []string
		for _, x := range xs {
			qs = append(qs, q(x))
		}
		return "[" + strings.Join(qs, ", ") + "]"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "base_url: %s\n", q("http://"+d.HTTPAddr))
	fmt.Fprintf(&b, "virtual_domain: %s\n", c.VirtualDomain)
	fmt.Fprintf(&b, "data_dir: %s\n", q(dir))
	fmt.Fprintf(&b, "http:\n  listen: %s\n", q(d.HTTPAddr))
	if c.DNS != "" {
		fmt.Fprintf(&b, "dns:\n  servers: [%s]\n", q(c.DNS))
	}
	fmt.Fprintf(&b, "mail_out:\n  smarthost: {address: %s, tls: none}\n", q(mailOut))
	fmt.Fprintf(&b, "forward:\n  listen: %s\n  hostname: %s\n  operator_address: %s\n",
		q(d.SMTPAddr), c.Hostname, c.Operator)
	fmt.Fprintf(&b, "  allow:\n    networks: %s\n    domains: %s\n", list(c.Networks), list(c.Domains))
	fmt.Fprintf(&b, "  delivery: %s\n", c.Delivery)
	if c.Smarthost != "" {
		fmt.Fprintf(&b, "  smarthost: {address: %s, tls: none}\n", q(c.Smarthost))
	}
	if c.DeliveryPort != 0 {
		fmt.Fprintf(&b, "  delivery_port: %d\n", c.DeliveryPort)
	}
	if c.SRSDomain != "" {
		fmt.Fprintf(&b, "  srs_domain: %s\n", c.SRSDomain)
	}
	if c.DKIMSelector != "" {
		fmt.Fprintf(&b, "  dkim: {selector: %s}\n", c.DKIMSelector)
	}
	if d.Socketmap != "" {
		fmt.Fprintf(&b, "  socketmap_listen: %s\n", q(d.Socketmap))
	}
	// Weak password hashing keeps `user add` fast; these are test accounts.
	b.WriteString("accounts:\n  argon2: {memory_kib: 64, iterations: 1, parallelism: 1, allow_weak: true}\n")
	fmt.Fprintf(&b, "log:\n  level: %s\n", c.LogLevel)
	if err := os.WriteFile(d.ConfigFile, []byte(b.String()), 0o644); err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("idbridge config:\n%s\nidbridge log (tail):\n%s", b.String(), tail(d.Log, 60))
		}
	})
	return d
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// CLI runs `idbridge ARGS --config FILE` with stdin and returns its output.
func (d *Idbridge) CLI(stdin string, args ...string) (string, error) {
	cmd := exec.Command(d.Bin, append(args, "--config", d.ConfigFile)...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("idbridge %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// AddUser creates a verified account.
func (d *Idbridge) AddUser(t TB, name, email string) {
	t.Helper()
	if _, err := d.CLI("correct horse battery staple\n", "user", "add", name, "--email", email,
		"--first-name", "First", "--last-name", "Last", "--password-stdin"); err != nil {
		t.Fatalf("%v", err)
	}
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "IDBRIDGE_") && !strings.HasPrefix(kv, "IDBRIDGE_TEST_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// Start runs `idbridge serve --config FILE` and waits until it says it
// listens (and the socketmap port accepts connections).
func (d *Idbridge) Start(t TB) {
	t.Helper()
	d.mu.Lock()
	if d.cmd != nil {
		d.mu.Unlock()
		t.Fatalf("idbridge already running")
	}
	logf, err := os.OpenFile(d.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.mu.Unlock()
		t.Fatalf("%v", err)
	}
	fmt.Fprintf(logf, "=== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(d.Bin, "serve", "--config", d.ConfigFile)
	cmd.Env = cleanEnv()
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		d.mu.Unlock()
		t.Fatalf("%v", err)
	}
	if err := cmd.Start(); err != nil {
		d.mu.Unlock()
		t.Fatalf("start idbridge: %v", err)
	}
	d.cmd = cmd
	done := make(chan struct{})
	d.done = done
	d.mu.Unlock()

	ready := make(chan string, 1)
	want := "idbridge: listening on "
	if d.SMTPAddr != "" {
		want = "idbridge: smtp on "
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if strings.HasPrefix(line, want) {
				select {
				case ready <- strings.TrimPrefix(line, want):
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	select {
	case got := <-ready:
		if d.SMTPAddr != "" && got != d.SMTPAddr {
			t.Fatalf("idbridge says smtp on %s, configured %s", got, d.SMTPAddr)
		}
	case <-done:
		t.Fatalf("idbridge serve exited before it was ready:\n%s", tail(d.Log, 40))
	case <-time.After(30 * time.Second):
		t.Fatalf("idbridge serve not ready after 30s:\n%s", tail(d.Log, 40))
	}
	if d.Socketmap != "" {
		WaitPort(t, d.Socketmap, 10*time.Second)
	}
}

// Kill ends the process with SIGKILL (no chance to clean up) and waits.
func (d *Idbridge) Kill() { d.signal(syscall.SIGKILL) }

// Stop ends the process with SIGTERM (SIGKILL after 15 s) and waits.
func (d *Idbridge) Stop() { d.signal(syscall.SIGTERM) }

func (d *Idbridge) signal(sig syscall.Signal) {
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.cmd = nil
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Running reports whether the process has not exited.
func (d *Idbridge) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}
