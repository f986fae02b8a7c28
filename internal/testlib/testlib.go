// Package testlib holds small helpers shared by the tests of several packages:
// finding the real peer programs the tests drive, and picking free loopback ports.
package testlib

import (
	"net"
	"os"
	"os/exec"
	"testing"
)

// Need returns the path of program, or skips the test when it is absent.
// Under CI (CI=true) an absent program fails the test instead: CI installs
// every peer (scripts/install-peers), so a missing one is a broken set-up.
func Need(t testing.TB, program string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/lib/postfix/sbin"} {
		cand := dir + "/" + program
		if st, err := os.Stat(cand); err == nil && !st.IsDir() {
			return cand
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed; run scripts/install-peers", program)
	}
	t.Skipf("%s is not installed; run scripts/install-peers", program)
	return ""
}

// FreePort returns a loopback address "127.0.0.1:PORT" that was free a moment ago.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
