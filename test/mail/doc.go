// Package mail holds idbridge's end-to-end mail tests and the helpers they
// share with the mail benchmark (bench/mail).
//
// The tests build the real binary (go build ./cmd/idbridge, once per run),
// write a config file, keep the SQLite store and the mail queue in a temp
// folder, listen on free loopback ports only, and talk to it with real
// programs from ../shared/PEERS.md: a private Postfix instance in front of
// it and in place of it (socketmap lookups), smtp-sink behind it, dkimpy to
// verify DKIM signatures, postsrsd to mint SRS addresses with a foreign
// secret, and a local DNS server (internal/testlib/dnstest) for MX and DKIM
// records. Every daemon they start is stopped by PID (Postfix by
// `postfix -c DIR stop`) when the test ends.
//
// A private Postfix needs root; those tests skip without it (and without
// the programs), except under CI=true, where a missing program fails.
package mail
