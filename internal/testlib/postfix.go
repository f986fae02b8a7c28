package testlib

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Postfix is a private Postfix instance (its own config, queue and log
// under a temp folder) listening on a free loopback port.
type Postfix struct {
	Dir     string
	Etc     string // its config folder (postfix -c, postqueue -c)
	Addr    string // its smtpd
	Maillog string
}

const postfixMasterCF = `%d inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
`

// StartPostfix starts a private Postfix whose main.cf is the private-instance
// basics plus extra (lines such as "relayhost = [127.0.0.1]:2525"). It
// relays for 127.0.0.0/8, has no local delivery, does no DNS, and retries
// quickly. It needs root and the postfix program: a test that should skip
// without them checks first (Need). When the test ends, `postfix stop` ends
// the instance and StartPostfix's cleanup waits for its master to exit.
func StartPostfix(t TB, extra string) *Postfix {
	t.Helper()
	postfix := FindProgram("postfix")
	if postfix == "" {
		t.Fatalf("postfix is not installed; run scripts/install-peers")
	}
	if os.Geteuid() != 0 {
		t.Fatalf("a private Postfix instance needs root")
	}
	dir := PublicDir(t, "postfix", 0o755)
	p := &Postfix{Dir: dir, Etc: filepath.Join(dir, "etc"), Addr: FreePort(t), Maillog: filepath.Join(dir, "maillog")}
	spool, data := filepath.Join(dir, "spool"), filepath.Join(dir, "data")
	for _, d := range []string{p.Etc, spool, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("%v", err)
		}
	}
	if out, err := exec.Command("chown", "postfix", data).CombinedOutput(); err != nil {
		t.Fatalf("chown postfix: %v %s", err, out)
	}
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s
data_directory = %[2]s
meta_directory = %[3]s
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.test
mydomain = postfix.test
myorigin = postfix.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
maillog_file = %[4]s
maillog_file_prefixes = /var, /dev/stdout, %[5]s
smtputf8_enable = no
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
`, spool, data, p.Etc, p.Maillog, dir)
	mainCF += strings.TrimSpace(extra) + "\n"
	files := map[string]string{"main.cf": mainCF, "master.cf": fmt.Sprintf(postfixMasterCF, Port(p.Addr))}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(p.Etc, name), []byte(body), 0o644); err != nil {
			t.Fatalf("%v", err)
		}
	}
	// Dynamic map types (ldap:, socketmap:) are registered here.
	for _, name := range []string{"dynamicmaps.cf", "postfix-files"} {
		if b, err := os.ReadFile(filepath.Join("/etc/postfix", name)); err == nil {
			os.WriteFile(filepath.Join(p.Etc, name), b, 0o644)
		}
	}
	if d, err := os.ReadDir("/etc/postfix/dynamicmaps.cf.d"); err == nil && len(d) > 0 {
		os.MkdirAll(filepath.Join(p.Etc, "dynamicmaps.cf.d"), 0o755)
		for _, e := range d {
			if b, err := os.ReadFile(filepath.Join("/etc/postfix/dynamicmaps.cf.d", e.Name())); err == nil {
				os.WriteFile(filepath.Join(p.Etc, "dynamicmaps.cf.d", e.Name()), b, 0o644)
			}
		}
	}
	if out, err := exec.Command(postfix, "-c", p.Etc, "start").CombinedOutput(); err != nil {
		check, _ := exec.Command("script", "-qc", postfix+" -c "+p.Etc+" check", "/dev/null").CombinedOutput()
		t.Fatalf("postfix start: %v %s\npostfix check: %s\nmaillog:\n%s", err, out, check, p.Log())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("postfix maillog (tail):\n%s", tailLines(p.Log(), 40))
		}
		pidText, _ := os.ReadFile(filepath.Join(spool, "pid", "master.pid"))
		pid, _ := strconv.Atoi(strings.TrimSpace(string(pidText)))
		exec.Command(postfix, "-c", p.Etc, "stop").Run()
		if pid > 0 {
			// Wait for the master (which stops its children) to exit.
			Poll(10*time.Second, 50*time.Millisecond, func() bool {
				return syscall.Kill(pid, 0) != nil
			})
		}
	})
	WaitPort(t, p.Addr, 15*time.Second)
	return p
}

// Log returns Postfix's mail log so far.
func (p *Postfix) Log() string {
	b, _ := os.ReadFile(p.Maillog)
	return string(b)
}

// QueueEmpty reports whether Postfix's queue holds no message.
func (p *Postfix) QueueEmpty() bool {
	postqueue := FindProgram("postqueue")
	if postqueue == "" {
		postqueue = "postqueue"
	}
	out, err := exec.Command(postqueue, "-c", p.Etc, "-j").Output()
	return err == nil && strings.TrimSpace(string(out)) == ""
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
