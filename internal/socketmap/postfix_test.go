package socketmap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idbridge/idbridge/internal/testlib"
)

// serveVirtual starts the socketmap server on a free port.
func serveVirtual(t *testing.T) string {
	t.Helper()
	s := NewServer(lookup, slog.New(slog.NewTextHandler(io.Discard, nil)))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l.Addr().String()
}

// publicTempDir is a temp dir that the postfix and nobody users can enter
// (t.TempDir's parent is private to root).
func publicTempDir(t *testing.T, mode os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "idbridge-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

func waitPort(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listening on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startSink runs smtp-sink keeping messages in the returned directory.
func startSink(t *testing.T) (addr, dir string) {
	t.Helper()
	bin := testlib.Need(t, "smtp-sink")
	dir = publicTempDir(t, 0o777)
	addr = testlib.FreePort(t)
	args := []string{"-d", filepath.Join(dir, "%Y%m%d%H%M%S."), addr, "16"}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...)
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitPort(t, addr)
	return addr, dir
}

const masterCF = `%s inet n - n - - smtpd
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

// postfixInstance is a private Postfix whose virtual_alias_maps is our
// socketmap server and whose relayhost is an smtp-sink.
type postfixInstance struct {
	etc, smtpAddr, maillog string
}

func startPostfix(t *testing.T, socketmapAddr, relayAddr string) *postfixInstance {
	t.Helper()
	postfix := testlib.Need(t, "postfix")
	if os.Geteuid() != 0 {
		t.Skip("a private Postfix instance needs root")
	}
	p := publicTempDir(t, 0o755)
	etc, spool, data := filepath.Join(p, "etc"), filepath.Join(p, "spool"), filepath.Join(p, "data")
	for _, d := range []string{etc, spool, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "postfix", data).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	smtpAddr := testlib.FreePort(t)
	_, smtpPort, _ := net.SplitHostPort(smtpAddr)
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/spool
data_directory = %[1]s/data
meta_directory = %[1]s/etc
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
maillog_file = %[1]s/maillog
maillog_file_prefixes = /var, /dev/stdout, %[1]s
smtputf8_enable = no
virtual_alias_domains = id.test
virtual_alias_maps = socketmap:inet:%[2]s:virtual
relayhost = [%[3]s]:%[4]s
`, p, socketmapAddr, strings.Split(relayAddr, ":")[0], strings.Split(relayAddr, ":")[1])
	files := map[string]string{"main.cf": mainCF, "master.cf": fmt.Sprintf(masterCF, smtpPort)}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"dynamicmaps.cf", "postfix-files"} {
		if b, err := os.ReadFile(filepath.Join("/etc/postfix", name)); err == nil {
			os.WriteFile(filepath.Join(etc, name), b, 0o644)
		}
	}
	inst := &postfixInstance{etc: etc, smtpAddr: smtpAddr, maillog: filepath.Join(p, "maillog")}
	if out, err := exec.Command(postfix, "-c", etc, "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(inst.maillog)
		t.Fatalf("postfix start: %v %s\n%s", err, out, log)
	}
	pidText, err := os.ReadFile(filepath.Join(spool, "pid", "master.pid"))
	pid, perr := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil || perr != nil {
		t.Fatalf("postfix master pid: %v %v", err, perr)
	}
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGTERM) // master stops its children
		if t.Failed() {
			log, _ := os.ReadFile(inst.maillog)
			t.Logf("postfix maillog:\n%s", log)
		}
	})
	waitPort(t, smtpAddr)
	return inst
}

func TestPostmapQuery(t *testing.T) {
	postmap := testlib.Need(t, "postmap")
	addr := serveVirtual(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.cf"), nil, 0o644)
	table := "socketmap:inet:" + addr + ":virtual"
	tests := []struct {
		key, want string
		found     bool
	}{
		{"john@id.test", "john.real@gmail.test", true},
		{"mary@id.test", "mary@example.test", true},
		{"nobody@id.test", "", false},
	}
	for _, tt := range tests {
		out, err := exec.Command(postmap, "-c", dir, "-q", tt.key, table).Output()
		var ee *exec.ExitError
		switch {
		case err == nil && tt.found && strings.TrimSpace(string(out)) == tt.want:
		case errors.As(err, &ee) && ee.ExitCode() == 1 && !tt.found:
		default:
			t.Errorf("postmap -q %s = %q, %v; want %q", tt.key, out, err, tt.want)
		}
	}
	// A TEMP answer is a lookup error for Postfix, not "not found".
	out, err := exec.Command(postmap, "-c", dir, "-q", "broken@id.test", table).CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("temporary error: lookup failed")) || !bytes.Contains(out, []byte("fatal")) {
		t.Errorf("postmap on a TEMP answer: %v %s", err, out)
	}
}

func TestPostfixDeliversToRealAddress(t *testing.T) {
	sinkAddr, sinkDir := startSink(t)
	pf := startPostfix(t, serveVirtual(t), sinkAddr)

	c, err := smtp.Dial(pf.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("mta.atlassian.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("jira@atlassian.test"); err != nil {
		t.Fatal(err)
	}
	// Unknown and failing addresses are refused in the session, with the
	// codes Postfix gives for NOTFOUND and TEMP.
	for _, tc := range []struct {
		rcpt string
		code int
	}{{"nobody@id.test", 550}, {"broken@id.test", 451}} {
		err := c.Rcpt(tc.rcpt)
		var te *textproto.Error
		if !errors.As(err, &te) || te.Code != tc.code {
			t.Errorf("RCPT %s: %v, want %d", tc.rcpt, err, tc.code)
		}
	}
	if err := c.Rcpt("john@id.test"); err != nil {
		t.Fatalf("RCPT john@id.test: %v", err)
	}
	msgID := fmt.Sprintf("<%d.socketmap@atlassian.test>", time.Now().UnixNano())
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "From: jira@atlassian.test\r\nTo: john@id.test\r\nSubject: socketmap\r\nMessage-ID: %s\r\n\r\nhello\r\n", msgID)
	if err := w.Close(); err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
	c.Quit()

	// Postfix delivers asynchronously: wait for the sink to keep it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ents, _ := os.ReadDir(sinkDir)
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(sinkDir, e.Name()))
			if !bytes.Contains(b, []byte(msgID)) {
				continue
			}
			if !bytes.Contains(b, []byte("X-Rcpt-Args: <john.real@gmail.test>")) {
				t.Fatalf("delivered to the wrong address:\n%s", b)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Postfix did not deliver to the sink")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
