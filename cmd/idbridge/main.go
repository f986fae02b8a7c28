// Command idbridge is the whole of idbridge in one binary: the account site,
// the SAML identity provider, the mail forwarder for virtual addresses, and
// the command-line tools that operators use on the same store.
//
// main only parses the command line, loads the configuration and wires the
// parts of internal/ together; every rule lives in those packages.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Exit statuses (PRODUCT.md): 0 success, 1 failure, 2 bad usage.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const usage = `idbridge: one account for a community's tools

Usage:
  idbridge serve [--config FILE]
  idbridge serve --dev [--listen ADDR] [--data-dir DIR] [--smtp-listen ADDR]
  idbridge check-config --config FILE
  idbridge user add USERNAME --email E --first-name F --last-name L --password-stdin [--admin] [--unverified]
  idbridge user show USERNAME
  idbridge user list [--query Q] [--group G] [--limit N]
  idbridge user lock|unlock|delete USERNAME
  idbridge user set-password USERNAME --password-stdin
  idbridge user group USERNAME GROUP [--remove]
  idbridge audit [--user NAME] [--since DURATION] [--type TYPE] [--limit N]
  idbridge keys list|show ID|add|activate ID|retire ID [--purpose saml|dkim]
  idbridge keys dkim                            (the DNS record of our DKIM key)
  idbridge mailq
  idbridge backup FILE                          (an online copy of a SQLite store)

Every command that touches data takes --config FILE (or IDBRIDGE_CONFIG), or
--data-dir DIR for the state of a 'serve --dev --data-dir DIR'.
Exit status: 0 success, 1 failure (check-config: the file is invalid), 2 bad usage.
`

// usageError is bad usage: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// env is what a command sees of the world; tests give their own.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	environ        []string
}

func main() {
	os.Exit(run(os.Args[1:], env{os.Stdin, os.Stdout, os.Stderr, os.Environ()}))
}

func run(args []string, e env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	cmds := map[string]func([]string, env) error{
		"serve":        cmdServe,
		"check-config": cmdCheckConfig,
		"user":         cmdUser,
		"audit":        cmdAudit,
		"keys":         cmdKeys,
		"mailq":        cmdMailq,
		"backup":       cmdBackup,
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		fmt.Fprint(e.stdout, usage)
		return exitOK
	}
	f, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "idbridge: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	err := f(args[1:], e)
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "idbridge %s: %s\n", args[0], ue.msg)
		return exitUsage
	case errors.Is(err, errReported):
		return exitFailure
	default:
		fmt.Fprintf(e.stderr, "idbridge %s: %v\n", args[0], err)
		return exitFailure
	}
}

// errReported: the command already printed what went wrong.
var errReported = errors.New("reported")

// parseFlags parses flags that may come before, between or after positional
// arguments ("user add NAME --email E"), and returns the positional ones.
func parseFlags(fs *flag.FlagSet, args []string, e env) ([]string, error) {
	fs.SetOutput(e.stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// dataFlags are the flags of every command that opens the store.
type dataFlags struct {
	config  string
	dataDir string
	dev     bool
}

func (d *dataFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.config, "config", "", "config file (default $IDBRIDGE_CONFIG)")
	fs.StringVar(&d.dataDir, "data-dir", "", "use the state of 'serve --dev --data-dir DIR'")
	fs.BoolVar(&d.dev, "dev", false, "with --data-dir: the --dev configuration")
}

func envValue(environ []string, key string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}
