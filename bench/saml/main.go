// Command saml measures signed SAML responses per second for a member who is
// already logged in, through idbridge's real HTTP endpoint, against raw
// RSA-2048 signatures per second in the same run (issue 3's goal: the ratio
// is at least 0.7, i.e. everything around the one signature costs at most
// 30 %).
//
// It builds ./cmd/idbridge (or takes -binary), writes a production-shaped
// config on loopback (SQLite) with one Atlassian-shaped service provider
// (`sign: response`, `attributes: atlassian`, NameID the virtual address),
// creates one member with `idbridge user add`, starts `idbridge serve
// --config`, logs the member in over HTTP, and then alternates -rounds times
// a phase of GOMAXPROCS workers each fetching /saml/launch/atlassian with the
// member's session (IdP-initiated SSO: one signed Response per request, the
// auto-POST page read whole) and a phase of GOMAXPROCS goroutines signing
// SHA-256 digests with an RSA-2048 key (crypto/rsa PKCS#1 v1.5, what the
// XML signature uses). It prints both rates and their ratio, and the same per
// CPU-second (server process vs signing goroutines).
//
//	go run ./bench/saml [-rounds 6] [-phase 5s] [-binary PATH]
//
// A benchmark, not a test: it prints numbers and never fails on them.
package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idbridge/idbridge/bench/internal/benchlib"
)

const (
	user = "benchsaml"
	pw   = "bench-saml-Passw0rd!"
	sp   = `saml:
  service_providers:
    - name: atlassian
      entity_id: https://auth.atlassian.com/saml/0000
      acs_url: "https://auth.atlassian.com/login/callback?connection=saml-0000"
      name_id: virtual_address
      attributes: atlassian
      sign: response
      default_relay_state: https://example.atlassian.net
`
)

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func main() {
	rounds := flag.Int("rounds", 6, "login/sign phase pairs")
	phase := flag.Duration("phase", 5*time.Second, "length of each phase")
	binary := flag.String("binary", "", "use this idbridge binary instead of building ./cmd/idbridge")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("bench/saml: ")

	dir, err := os.MkdirTemp("", "idbridge-bench-saml-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin, err := benchlib.Build(dir, *binary)
	if err != nil {
		log.Fatal(err)
	}
	addr, err := benchlib.FreeAddr()
	if err != nil {
		log.Fatal(err)
	}
	cfg := &benchlib.Config{Dir: dir, HTTPAddr: addr, Argon2: [3]int{19456, 2, 1}, Extra: sp}
	if err := cfg.Write(); err != nil {
		log.Fatal(err)
	}
	add := exec.Command(bin, "user", "add", user, "--email", "bench@example.org", "--first-name", "Bench",
		"--last-name", "Saml", "--password-stdin", "--config", cfg.ConfigPath)
	add.Stdin = strings.NewReader(pw + "\n")
	if out, err := add.CombinedOutput(); err != nil {
		log.Fatalf("user add: %v\n%s", err, out)
	}
	srv, err := benchlib.Serve(bin, cfg.ConfigPath, addr, os.Stderr)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Stop()
	base := "http://" + addr

	workers := runtime.GOMAXPROCS(0)
	tr := &http.Transport{MaxIdleConnsPerHost: workers}
	clients := make([]*http.Client, workers)
	for i := range clients {
		if clients[i], err = loggedIn(tr, base); err != nil {
			log.Fatal(err)
		}
	}
	// One check that the launch really gives a signed Response.
	if body, err := launch(clients[0], base); err != nil {
		log.Fatal(err)
	} else if !strings.Contains(body, `name="SAMLResponse"`) {
		log.Fatalf("launch gave no SAMLResponse:\n%s", body)
	}

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		log.Fatal(err)
	}
	var ssoN, sigN int64
	var ssoWall, sigWall, ssoCPU, sigCPU time.Duration
	for r := 0; r < *rounds; r++ {
		for _, first := range []bool{r%2 == 0, r%2 != 0} {
			if first {
				cpu0, _ := benchlib.ProcCPU(srv.Cmd.Process.Pid)
				n, d := run(workers, *phase, func(i int) error {
					_, err := launch(clients[i], base)
					return err
				})
				cpu1, _ := benchlib.ProcCPU(srv.Cmd.Process.Pid)
				ssoN, ssoWall, ssoCPU = ssoN+n, ssoWall+d, ssoCPU+cpu1-cpu0
			} else {
				cpu0 := benchlib.SelfCPU()
				digest := sha256.Sum256([]byte("idbridge"))
				n, d := run(workers, *phase, func(int) error {
					_, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
					return err
				})
				sigN, sigWall, sigCPU = sigN+n, sigWall+d, sigCPU+benchlib.SelfCPU()-cpu0
			}
		}
	}
	ssoRate := float64(ssoN) / ssoWall.Seconds()
	sigRate := float64(sigN) / sigWall.Seconds()
	fmt.Printf("machine:               %s\n", benchlib.Machine())
	fmt.Printf("workers:               %d (GOMAXPROCS), %d rounds of %s + %s\n", workers, *rounds, *phase, *phase)
	fmt.Printf("signed SSO responses:  %d in %s: %.1f/s (%.1f per core)\n", ssoN, ssoWall.Round(time.Millisecond), ssoRate, ssoRate/float64(workers))
	fmt.Printf("raw RSA-2048 signs:    %d in %s: %.1f/s (%.1f per core)\n", sigN, sigWall.Round(time.Millisecond), sigRate, sigRate/float64(workers))
	fmt.Printf("ratio (wall-clock):    %.3f (goal >= 0.7)\n", ssoRate/sigRate)
	if ssoCPU > 0 && sigCPU > 0 {
		a, b := float64(ssoN)/ssoCPU.Seconds(), float64(sigN)/sigCPU.Seconds()
		fmt.Printf("ratio (per CPU-second): %.3f (%.1f responses per server CPU-s vs %.1f signatures per CPU-s)\n", a/b, a, b)
	}
}

// run calls f from workers goroutines for d and returns the calls that
// succeeded and the time taken.
func run(workers int, d time.Duration, f func(i int) error) (int64, time.Duration) {
	var n atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(d)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if err := f(i); err != nil {
					log.Fatal(err)
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return n.Load(), time.Since(start)
}

func loggedIn(tr http.RoundTripper, base string) (*http.Client, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: tr, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(base + "/login")
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfRE.FindSubmatch(body)
	if m == nil {
		return nil, fmt.Errorf("no CSRF token on /login")
	}
	req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(url.Values{"csrf": {string(m[1])}, "login": {user}, "password": {pw}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err = c.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("login: %s", resp.Status)
	}
	return c, nil
}

func launch(c *http.Client, base string) (string, error) {
	resp, err := c.Get(base + "/saml/launch/atlassian")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("launch: %s", resp.Status)
	}
	return string(body), nil
}
