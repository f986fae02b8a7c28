package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/idbridge/idbridge/internal/account"
	"github.com/idbridge/idbridge/internal/config"
	"github.com/idbridge/idbridge/internal/store"
)

// loadConfig finds the configuration of a data command: --config, then
// IDBRIDGE_CONFIG, then the --dev configuration of --data-dir.
func loadConfig(d dataFlags, e env) (*config.Config, error) {
	path := d.config
	if path == "" {
		path = envValue(e.environ, "IDBRIDGE_CONFIG")
	}
	if path != "" {
		return config.Load(path, e.environ)
	}
	if d.dataDir != "" {
		c := config.Dev(d.dataDir)
		if err := c.ApplyEnv(e.environ); err != nil {
			return nil, err
		}
		return c, nil
	}
	return nil, usagef("no configuration: give --config FILE, set IDBRIDGE_CONFIG, or --data-dir DIR of a --dev instance")
}

// withAccounts opens the store and the account service for one CLI command.
func withAccounts(d dataFlags, e env, fn func(ctx context.Context, a *app) error) error {
	cfg, err := loadConfig(d, e)
	if err != nil {
		return err
	}
	ctx := context.Background()
	a, err := newApp(ctx, cfg, quietLogger(e.stderr))
	if err != nil {
		return err
	}
	defer a.close()
	return fn(ctx, a)
}

func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("read password from stdin: empty")
	}
	return pw, nil
}

func cmdUser(args []string, e env) error {
	if len(args) == 0 {
		return usagef("user needs a subcommand: add, show, list, lock, unlock, set-password, delete, group")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("user "+sub, flag.ContinueOnError)
	var d dataFlags
	d.register(fs)
	switch sub {
	case "add":
		var email, first, last string
		var pwStdin, admin, unverified bool
		fs.StringVar(&email, "email", "", "real email address")
		fs.StringVar(&first, "first-name", "", "first name")
		fs.StringVar(&last, "last-name", "", "last name")
		fs.BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of stdin")
		fs.BoolVar(&admin, "admin", false, "member of the admins group")
		fs.BoolVar(&unverified, "unverified", false, "the email is not verified yet (a verification mail is sent)")
		pos, err := parseFlags(fs, args, e)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("user add needs exactly one USERNAME")
		}
		var missing []string
		for _, f := range []struct{ v, n string }{{email, "--email"}, {first, "--first-name"}, {last, "--last-name"}} {
			if f.v == "" {
				missing = append(missing, f.n)
			}
		}
		if !pwStdin {
			missing = append(missing, "--password-stdin")
		}
		if len(missing) > 0 {
			return usagef("user add needs %s", strings.Join(missing, ", "))
		}
		pw, err := readPassword(e.stdin)
		if err != nil {
			return err
		}
		return withAccounts(d, e, func(ctx context.Context, a *app) error {
			acc, err := a.accounts.Create(ctx, account.CreateInput{Username: pos[0], FirstName: first, LastName: last,
				Email: email, Password: pw, Admin: admin, Unverified: unverified}, "cli")
			if err != nil {
				return describeAccountError(err)
			}
			fmt.Fprintf(e.stdout, "created %s (%s), virtual address %s\n", acc.Username, acc.ID, a.accounts.VirtualAddress(acc))
			return nil
		})
	case "show":
		pos, err := parseFlags(fs, args, e)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("user show needs exactly one USERNAME")
		}
		return withAccounts(d, e, func(ctx context.Context, a *app) error {
			acc, groups, err := a.accounts.Get(ctx, pos[0])
			if err != nil {
				return describeAccountError(err)
			}
			w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "username:\t%s\n", acc.Username)
			fmt.Fprintf(w, "id:\t%s\n", acc.ID)
			fmt.Fprintf(w, "virtual address:\t%s\n", a.accounts.VirtualAddress(acc))
			fmt.Fprintf(w, "name:\t%s %s\n", acc.FirstName, acc.LastName)
			fmt.Fprintf(w, "email:\t%s\n", acc.Email)
			fmt.Fprintf(w, "verified:\t%t\n", acc.EmailVerified)
			if acc.PendingEmail != "" {
				fmt.Fprintf(w, "pending email:\t%s\n", acc.PendingEmail)
			}
			fmt.Fprintf(w, "locked:\t%t\n", acc.Locked)
			fmt.Fprintf(w, "groups:\t%s\n", strings.Join(groups, ", "))
			fmt.Fprintf(w, "created:\t%s\n", acc.CreatedAt.UTC().Format(time.RFC3339))
			if !acc.LastLoginAt.IsZero() {
				fmt.Fprintf(w, "last login:\t%s\n", acc.LastLoginAt.UTC().Format(time.RFC3339))
			}
			return w.Flush()
		})
	case "list":
		var f store.AccountFilter
		fs.StringVar(&f.Query, "query", "", "substring of username, email or name")
		fs.StringVar(&f.Group, "group", "", "only members of this group")
		fs.IntVar(&f.Limit, "limit", 0, "at most this many")
		pos, err := parseFlags(fs, args, e)
		if err != nil {
			return err
		}
		if len(pos) != 0 {
			return usagef("user list takes no arguments (use --query)")
		}
		return withAccounts(d, e, func(ctx context.Context, a *app) error {
			accs, err := a.accounts.List(ctx, f)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "USERNAME\tEMAIL\tVERIFIED\tLOCKED\tNAME")
			for _, acc := range accs {
				fmt.Fprintf(w, "%s\t%s\t%t\t%t\t%s %s\n", acc.Username, acc.Email, acc.EmailVerified, acc.Locked, acc.FirstName, acc.LastName)
			}
			return w.Flush()
		})
	case "lock", "unlock", "delete", "set-password":
		var pwStdin bool
		if sub == "set-password" {
			fs.BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of stdin")
		}
		pos, err := parseFlags(fs, args, e)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("user %s needs exactly one USERNAME", sub)
		}
		var pw string
		if sub == "set-password" {
			if !pwStdin {
				return usagef("user set-password needs --password-stdin")
			}
			if pw, err = readPassword(e.stdin); err != nil {
				return err
			}
		}
		return withAccounts(d, e, func(ctx context.Context, a *app) error {
			var err error
			switch sub {
			case "lock":
				err = a.accounts.Lock(ctx, pos[0], "cli")
			case "unlock":
				err = a.accounts.Unlock(ctx, pos[0], "cli")
			case "delete":
				err = a.accounts.AdminDelete(ctx, pos[0], "cli")
			case "set-password":
				err = a.accounts.SetPassword(ctx, pos[0], pw, "cli")
			}
			if err != nil {
				return describeAccountError(err)
			}
			fmt.Fprintf(e.stdout, "%s: done\n", sub)
			return nil
		})
	case "group":
		var remove bool
		fs.BoolVar(&remove, "remove", false, "remove from the group instead of adding")
		pos, err := parseFlags(fs, args, e)
		if err != nil {
			return err
		}
		if len(pos) != 2 {
			return usagef("user group needs USERNAME GROUP")
		}
		return withAccounts(d, e, func(ctx context.Context, a *app) error {
			if err := a.accounts.SetGroup(ctx, pos[0], pos[1], !remove, "cli"); err != nil {
				return describeAccountError(err)
			}
			fmt.Fprintln(e.stdout, "group: done")
			return nil
		})
	default:
		return usagef("unknown user subcommand %q", sub)
	}
}

// describeAccountError turns the account package's errors into a message
// that names the problem.
func describeAccountError(err error) error {
	var ve *account.ValidationError
	if errors.As(err, &ve) {
		var parts []string
		for _, f := range ve.Fields {
			parts = append(parts, f.Field+": "+fieldMessage(f.Code))
		}
		return errors.New(strings.Join(parts, "; "))
	}
	if errors.Is(err, store.ErrNotFound) {
		return errors.New("no such user")
	}
	return err
}

func fieldMessage(code string) string {
	if m, ok := fieldMessages[code]; ok {
		return m
	}
	return code
}

var fieldMessages = map[string]string{
	"username.invalid":     "3 to 32 characters: a letter first, then letters, digits, '.', '-' or '_' (no '..', no '.' at the end)",
	"username.reserved":    "this name is reserved",
	"username.taken":       "this username is taken (usernames are never reissued)",
	"email.invalid":        "not a valid email address",
	"email.virtual_domain": "an address on the virtual domain cannot be an account's real email",
	"email.taken":          "this email is already the verified email of another account",
	"password.too_short":   "too short",
	"password.common":      "one of the most common passwords",
	"password.mismatch":    "the passwords differ",
	"name.required":        "required",
	"name.too_long":        "too long",
}

func cmdAudit(args []string, e env) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	var d dataFlags
	d.register(fs)
	var user, typ string
	var sinceText string
	var limit int
	fs.StringVar(&user, "user", "", "only events of this username")
	fs.StringVar(&sinceText, "since", "", "only events newer than this (e.g. 90m, 24h, 7d)")
	fs.StringVar(&typ, "type", "", "only events of this type (e.g. login.failure)")
	fs.IntVar(&limit, "limit", 200, "at most this many, newest first")
	pos, err := parseFlags(fs, args, e)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("audit takes no arguments")
	}
	var since time.Duration
	if sinceText != "" {
		d, err := config.ParseDuration(sinceText)
		if err != nil || d <= 0 {
			return usagef("--since %q: want a positive duration such as 90m, 24h or 7d", sinceText)
		}
		since = d.Duration()
	}
	return withAccounts(d, e, func(ctx context.Context, a *app) error {
		f := store.AuditFilter{Username: strings.ToLower(user), Type: typ, Limit: limit}
		if since > 0 {
			f.Since = time.Now().Add(-since)
		}
		evs, err := a.accounts.Audit(ctx, f)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "TIME\tEVENT\tUSER\tIP\tACTOR\tDETAIL")
		for _, ev := range evs {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", ev.Time.UTC().Format(time.RFC3339), ev.Type, dash(ev.Username), dash(ev.IP), dash(ev.Actor), ev.Detail)
		}
		return w.Flush()
	})
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cmdKeys(args []string, e env) error {
	if len(args) == 0 {
		return usagef("keys needs a subcommand: list, show ID, add, activate ID, retire ID, dkim")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	var d dataFlags
	d.register(fs)
	purpose := fs.String("purpose", "saml", "which keys: saml (signing assertions) or dkim (the forwarder's own signature)")
	pos, err := parseFlags(fs, args, e)
	if err != nil {
		return err
	}
	if *purpose != "saml" && *purpose != "dkim" {
		return usagef("--purpose is saml or dkim, not %q", *purpose)
	}
	want := map[string]int{"list": 0, "add": 0, "activate": 1, "retire": 1, "dkim": 0, "show": 1}
	n, ok := want[sub]
	if !ok {
		return usagef("unknown keys subcommand %q", sub)
	}
	if len(pos) != n {
		return usagef("keys %s takes %d argument(s)", sub, n)
	}
	return withAccounts(d, e, func(ctx context.Context, a *app) error {
		km := a.samlKeys
		if *purpose == "dkim" {
			km = a.dkimKeys()
		}
		switch sub {
		case "dkim":
			sel := a.cfg.Forward.DKIM.Selector
			if sel == "" {
				return errors.New("forward.dkim.selector is not set: idbridge adds no DKIM signature of its own")
			}
			dk := a.dkimKeys()
			if err := dk.Ensure(ctx); err != nil {
				return err
			}
			kp, err := dk.Active(ctx)
			if err != nil {
				return err
			}
			rec, err := dkimRecord(sel, a.cfg.VirtualDomain, kp)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, rec)
			return nil
		case "add":
			k, err := km.Add(ctx)
			if err != nil {
				return err
			}
			if *purpose == "dkim" {
				fmt.Fprintf(e.stdout, "added dkim key %s (not signing yet). Publish its record under a new selector (`idbridge keys show %s --purpose dkim`), set forward.dkim.selector to it, run `idbridge keys activate %s --purpose dkim` and restart.\n", k.ID, k.ID, k.ID)
				return nil
			}
			fmt.Fprintf(e.stdout, "added key %s (published in metadata, not signing yet; `idbridge keys activate %s` makes it sign)\n%s", k.ID, k.ID, k.CertPEM)
			return nil
		case "activate":
			if err := km.Activate(ctx, pos[0]); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "key %s now signs; the previous key stays published until `idbridge keys retire`\n", pos[0])
			return nil
		case "retire":
			if err := km.Retire(ctx, pos[0]); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "key %s removed\n", pos[0])
			return nil
		}
		ks, err := km.List(ctx)
		if err != nil {
			return err
		}
		if sub == "show" {
			for _, k := range ks {
				if k.ID != pos[0] {
					continue
				}
				if *purpose == "dkim" {
					kp, err := km.Pair(ctx, k.ID)
					if err != nil {
						return err
					}
					sel := a.cfg.Forward.DKIM.Selector
					if sel == "" {
						sel = "SELECTOR"
					}
					rec, err := dkimRecord(sel, a.cfg.VirtualDomain, kp)
					if err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "dkim key %s (%s)\n%s\n", k.ID, k.State, rec)
					return nil
				}
				fmt.Fprintf(e.stdout, "key %s (%s, %s)\n%s", k.ID, k.Purpose, k.State, k.CertPEM)
				return nil
			}
			return fmt.Errorf("no %s key %q (see `idbridge keys list --purpose %s`)", *purpose, pos[0], *purpose)
		}
		w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tPURPOSE\tSTATE\tCREATED")
		for _, k := range ks {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", k.ID, k.Purpose, k.State, k.CreatedAt.UTC().Format(time.RFC3339))
		}
		return w.Flush()
	})
}

func cmdCheckConfig(args []string, e env) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	var path string
	fs.StringVar(&path, "config", "", "config file (default $IDBRIDGE_CONFIG)")
	pos, err := parseFlags(fs, args, e)
	if err != nil {
		return err
	}
	if len(pos) == 1 && path == "" {
		path = pos[0]
	} else if len(pos) != 0 {
		return usagef("check-config takes --config FILE")
	}
	if path == "" {
		path = envValue(e.environ, "IDBRIDGE_CONFIG")
	}
	if path == "" {
		return usagef("check-config needs --config FILE")
	}
	if _, err := config.Load(path, e.environ); err != nil {
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			fmt.Fprintf(e.stderr, "%s: %d problem(s)\n", path, len(ve.Problems))
			for _, p := range ve.Problems {
				fmt.Fprintf(e.stderr, "  %s\n", p.Error())
			}
			return errReported
		}
		return err
	}
	fmt.Fprintf(e.stdout, "%s: ok\n", path)
	return nil
}

// backupper is a store that can copy itself while in use (SQLite).
type backupper interface {
	Backup(ctx context.Context, path string) error
}

func cmdBackup(args []string, e env) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	var d dataFlags
	d.register(fs)
	pos, err := parseFlags(fs, args, e)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("backup needs exactly one FILE")
	}
	return withAccounts(d, e, func(ctx context.Context, a *app) error {
		b, ok := a.st.(backupper)
		if !ok {
			return errors.New("this store cannot copy itself: back up PostgreSQL with pg_dump (every key and secret is in the database)")
		}
		if err := b.Backup(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "backup written to %s (a SQLite database: keys and secrets included, keep it private)\n", pos[0])
		return nil
	})
}
