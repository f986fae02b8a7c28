// Command login measures password logins per second through idbridge's real
// HTTP endpoint, per core, against raw argon2id hashes per second at the same
// parameters in the same run (issue 2's goal: the ratio is at least 0.85, i.e.
// everything around the hash costs at most 15 %).
//
// It builds ./cmd/idbridge (or takes -binary), writes a production-shaped
// config on loopback with SQLite and the default argon2id parameters
// (m=19456 KiB, t=2, p=1), creates -accounts accounts with `idbridge user
// add`, starts `idbridge serve --config`, and then runs GOMAXPROCS client
// workers, each doing what a browser does: GET /login (CSRF
// cookie and token), POST /login with the credentials, expect 303. Every
// login uses a fresh cookie jar, so each one is a new session. Login phases
// alternate with phases of GOMAXPROCS goroutines hashing with
// golang.org/x/crypto/argon2 at the same parameters, -rounds times, and the
// ratio is of the totals. It also prints logins per CPU-second of the server
// process (from /proc/PID/stat) against hashes per CPU-second of the hashing
// goroutines: a figure that other load on the machine disturbs much less.
//
//	go run ./bench/login [-accounts 100] [-rounds 6] [-phase 5s] [-binary PATH]
//
// A benchmark, not a test: it prints numbers and never fails on them.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/idbridge/idbridge/bench/internal/benchlib"
)

// The default argon2id parameters (OWASP's minimum; internal/password.Default).
const (
	memoryKiB   = 19456
	iterations  = 2
	parallelism = 1
)

func main() {
	accounts := flag.Int("accounts", 100, "accounts to create with `idbridge user add`")
	phase := flag.Duration("phase", 5*time.Second, "length of each measuring phase")
	rounds := flag.Int("rounds", 6, "rounds of one login phase and one hash phase, interleaved")
	binary := flag.String("binary", "", "idbridge binary (default: go build ./cmd/idbridge)")
	keep := flag.Bool("keep", false, "keep the temporary folder")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("bench/login: ")

	procs := runtime.GOMAXPROCS(0)
	dir, err := os.MkdirTemp("", "idbridge-bench-login-")
	if err != nil {
		log.Fatal(err)
	}
	if !*keep {
		defer os.RemoveAll(dir)
		cleanup = func() { os.RemoveAll(dir) }
	}
	bin, err := benchlib.Build(dir, *binary)
	if err != nil {
		fatal(err)
	}
	addr, err := benchlib.FreeAddr()
	if err != nil {
		fatal(err)
	}
	cfg := benchlib.Config{Dir: dir, HTTPAddr: addr, Argon2: [3]int{memoryKiB, iterations, parallelism}}
	if err := cfg.Write(); err != nil {
		fatal(err)
	}

	// Accounts, through the operator's command, a few at a time.
	start := time.Now()
	if err := addAccounts(bin, cfg.ConfigPath, *accounts, procs); err != nil {
		fatal(err)
	}
	log.Printf("created %d accounts with `idbridge user add` in %v", *accounts, time.Since(start).Round(time.Millisecond))

	logf, err := os.Create(dir + "/serve.log")
	if err != nil {
		fatal(err)
	}
	defer logf.Close()
	srv, err := benchlib.Serve(bin, cfg.ConfigPath, addr, logf)
	if err != nil {
		fatal(err)
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			log.Printf("stop: %v", err)
		}
	}()

	base := "http://" + addr
	// Warm up: every worker logs in a few times (page cache, connections).
	warm, _ := runLogins(base, *accounts, procs, 2*time.Second)
	log.Printf("warm-up: %d logins", warm)

	// Logins and raw hashes alternate, in short phases and in alternating
	// order, so that drift in the machine's speed (shared virtual CPUs)
	// touches both alike.
	// Besides wall-clock rates, count CPU time: the server's own (from
	// /proc) while it serves logins, and this process's while it hashes.
	// Per CPU-second figures hold even when other work shares the machine.
	pid := srv.Cmd.Process.Pid
	var logins, failures, hashes int64
	var serverCPU, hashCPU time.Duration
	var ratios []float64
	loginPhase := func() (int64, int64) {
		c0, _ := benchlib.ProcCPU(pid)
		l, f := runLogins(base, *accounts, procs, *phase)
		c1, _ := benchlib.ProcCPU(pid)
		serverCPU += c1 - c0
		return l, f
	}
	hashPhase := func() int64 {
		c0 := benchlib.SelfCPU()
		h := runHashes(procs, *phase)
		hashCPU += benchlib.SelfCPU() - c0
		return h
	}
	for r := range *rounds {
		var l, f, h int64
		if r%2 == 0 {
			h = hashPhase()
			l, f = loginPhase()
		} else {
			l, f = loginPhase()
			h = hashPhase()
		}
		logins, failures, hashes = logins+l, failures+f, hashes+h
		ratios = append(ratios, float64(l)/float64(h))
		log.Printf("round %d: %.1f logins/s, %.1f hashes/s, ratio %.3f (load %s)", r+1,
			float64(l)/phase.Seconds(), float64(h)/phase.Seconds(), float64(l)/float64(h), benchlib.LoadAvg())
	}

	secs := phase.Seconds() * float64(*rounds)
	loginRate := float64(logins) / secs
	hashRate := float64(hashes) / secs
	loginPerCPU := float64(logins) / serverCPU.Seconds()
	hashPerCPU := float64(hashes) / hashCPU.Seconds()
	slices.Sort(ratios)
	fmt.Printf("machine:             %s, %d logical CPUs, GOMAXPROCS %d, load %s\n", benchlib.Machine(), runtime.NumCPU(), procs, benchlib.LoadAvg())
	fmt.Printf("argon2id:            m=%d,t=%d,p=%d\n", memoryKiB, iterations, parallelism)
	fmt.Printf("accounts:            %d (SQLite)\n", *accounts)
	fmt.Printf("workers:             %d; %d rounds of %v logins + %v hashes\n", procs, *rounds, *phase, *phase)
	fmt.Printf("logins:              %d ok, %d failed\n", logins, failures)
	fmt.Printf("logins/s:            %.1f (%.1f per core)\n", loginRate, loginRate/float64(procs))
	fmt.Printf("hashes/s:            %.1f (%.1f per core)\n", hashRate, hashRate/float64(procs))
	fmt.Printf("ratio logins/hashes: %.3f (goal >= 0.85); per round min %.3f, max %.3f\n",
		loginRate/hashRate, ratios[0], ratios[len(ratios)-1])
	fmt.Printf("per CPU-second:      %.1f logins (server CPU %v), %.1f hashes (CPU %v), ratio %.3f\n",
		loginPerCPU, serverCPU.Round(10*time.Millisecond), hashPerCPU, hashCPU.Round(10*time.Millisecond), loginPerCPU/hashPerCPU)
}

// addAccounts runs `idbridge user add` n times, par at a time. The first
// runs alone: it creates the SQLite file and its schema, and concurrent
// first opens of a new file fail with SQLITE_BUSY (see docs/benchmarks.md).
func addAccounts(bin, config string, n, par int) error {
	if n == 0 {
		return nil
	}
	if err := userAdd(bin, config, 0); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, par)
	for i := 1; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := userAdd(bin, config, i); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func userAdd(bin, config string, i int) error {
	name := fmt.Sprintf("bench%05d", i)
	cmd := exec.Command(bin, "user", "add", name, "--config", config,
		"--email", name+"@example.org", "--first-name", "Bench", "--last-name", fmt.Sprint(i), "--password-stdin")
	cmd.Stdin = strings.NewReader(password(i) + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("user add %s: %v\n%s", name, err, out)
	}
	return nil
}

func password(i int) string { return fmt.Sprintf("bench password %d", i) }

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// runLogins runs procs workers logging in for d and returns the counts.
func runLogins(base string, accounts, procs int, d time.Duration) (ok, failed int64) {
	var nOK, nFail atomic.Int64
	var next atomic.Int64
	tr := &http.Transport{MaxIdleConnsPerHost: procs * 2}
	defer tr.CloseIdleConnections()
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				i := int(next.Add(1)) % accounts
				if err := login(tr, base, fmt.Sprintf("bench%05d", i), password(i)); err != nil {
					if nFail.Add(1) <= 3 {
						log.Printf("login: %v", err)
					}
					continue
				}
				nOK.Add(1)
			}
		}()
	}
	wg.Wait()
	return nOK.Load(), nFail.Load()
}

// login is one browser-like login: the form, then the post.
func login(tr http.RoundTripper, base, user, pw string) error {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: tr, Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(base + "/login")
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfRE.FindSubmatch(body)
	if m == nil {
		return fmt.Errorf("GET /login: %d, no CSRF token", resp.StatusCode)
	}
	resp, err = c.PostForm(base+"/login", url.Values{"csrf": {string(m[1])}, "login": {user}, "password": {pw}})
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return fmt.Errorf("POST /login as %s: %d, want 303", user, resp.StatusCode)
	}
	return nil
}

// runHashes runs procs goroutines hashing with argon2id for d.
func runHashes(procs int, d time.Duration) int64 {
	var n atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for g := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			salt := []byte(fmt.Sprintf("saltsalt%08d", g))
			for time.Now().Before(stop) {
				argon2.IDKey([]byte("bench password"), salt, iterations, memoryKiB, parallelism, 32)
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return n.Load()
}

// cleanup removes the temporary folder; fatal calls it, since log.Fatal
// skips deferred calls.
var cleanup = func() {}

func fatal(v ...any) {
	cleanup()
	log.Fatal(v...)
}
