// Package testlib holds the harness shared by the tests of several packages:
// finding the real peer programs the tests drive, picking free loopback
// ports, running daemons for the length of a test (StartDaemon), building
// the idbridge binary once per test binary (BuildIdbridge), and private
// instances of the peers themselves: smtp-sink (StartSink), Postfix
// (StartPostfix) and Apache with mod_auth_mellon (NewMellon).
//
// Helpers that a test may need to skip take a testing.TB; the others take
// the smaller TB, so that the mail benchmark (bench/mail) can run them
// outside `go test`.
package testlib

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TB is the part of testing.TB the helpers that never skip use; a program
// outside `go test` (bench/mail) can implement it.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	Failed() bool
}

// FindProgram returns the path of program on PATH or in the sbin folders
// where Debian puts Postfix and slapd, or "" when it is absent.
func FindProgram(program string) string {
	if p, err := exec.LookPath(program); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/lib/postfix/sbin"} {
		cand := filepath.Join(dir, program)
		if st, err := os.Stat(cand); err == nil && !st.IsDir() {
			return cand
		}
	}
	return ""
}

// Need returns the path of program, or skips the test when it is absent.
// Under CI (CI=true) an absent program fails the test instead: CI installs
// every peer (scripts/install-peers), so a missing one is a broken set-up.
func Need(t testing.TB, program string) string {
	t.Helper()
	if p := FindProgram(program); p != "" {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed; run scripts/install-peers", program)
	}
	t.Skipf("%s is not installed; run scripts/install-peers", program)
	return ""
}

// FreePort returns a loopback address "127.0.0.1:PORT" that was free a moment ago.
func FreePort(t TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("%v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Port is the port number of a host:port address.
func Port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// PublicDir makes a temporary folder with the given mode whose parent is
// the system temp folder (t.TempDir's parent is private to its owner), so
// that daemons which drop privileges (postfix, nobody, www-data) can reach
// it, and removes it when the test ends, unless IDBRIDGE_TEST_KEEP is set.
func PublicDir(t TB, prefix string, mode os.FileMode) string {
	t.Helper()
	d, err := os.MkdirTemp("", "idbridge-"+prefix+"-")
	if err != nil {
		t.Fatalf("%v", err)
	}
	if err := os.Chmod(d, mode); err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if os.Getenv("IDBRIDGE_TEST_KEEP") != "" {
			t.Logf("kept %s", d)
			return
		}
		os.RemoveAll(d)
	})
	return d
}
