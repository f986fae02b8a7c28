package mail

import "github.com/idbridge/idbridge/internal/testlib"

// Postfix is a private Postfix instance (its own config, queue and log
// under a temp folder) listening on a free loopback port.
type Postfix = testlib.Postfix

// StartPostfix starts a private Postfix whose main.cf is the private-instance
// basics plus extra (lines such as "relayhost = [127.0.0.1]:2525").
func StartPostfix(t TB, extra string) *Postfix {
	t.Helper()
	return testlib.StartPostfix(t, extra)
}
