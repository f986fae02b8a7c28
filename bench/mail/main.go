// Command mailbench compares idbridge's mail forwarder with the set-up it
// replaces, a Postfix with an LDAP alias map, on the same machine and in the
// same run (docs/benchmarks.md, "Mail forwarding"):
//
//	(1) client → idbridge (forward.delivery: smarthost)           → smtp-sink
//	(2) client → private Postfix + virtual_alias_maps = ldap:slapd → smtp-sink
//
// Both are durable: Postfix's queue files are fsynced, and idbridge answers
// 250 only after its queue file is fsynced. The figure is "delivered to the
// sink": the time from the first message sent until smtp-sink has kept the
// last one (not merely until the client heard 250).
//
// Two workloads, each run against both pipelines with the same message
// count, size and concurrency:
//
//	A  smtp-source -d -m N -s S -l L -t alice@id.test (one recipient: lookups
//	   are all cache hits where there is a cache)
//	B  a Go client with S connections cycling through M members
//	   (u0000@id.test … ), so that lookups are not all cache hits
//
// It needs root (a private Postfix), postfix, postfix-ldap, slapd,
// ldap-utils and smtp-sink; run it from the module:
//
//	go run ./bench/mail -n 2000 -s 10 -l 4096 -members 1000 -rounds 5
//
// It is not a test: it asserts no timing, it only prints figures.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mt "github.com/idbridge/idbridge/test/mail"
)

// runner implements mail.TB outside `go test`.
type runner struct {
	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

func (r *runner) Helper() {}
func (r *runner) Logf(format string, a ...any) {
	log.Printf(format, a...)
}
func (r *runner) Fatalf(format string, a ...any) {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
	log.Printf("FATAL: "+format, a...)
	r.cleanup()
	os.Exit(1)
}
func (r *runner) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}
func (r *runner) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}
func (r *runner) cleanup() {
	r.mu.Lock()
	cs := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}

const (
	vd     = "id.test"
	sender = "jira@atlassian.net"
)

var (
	flagN       = flag.Int("n", 2000, "messages per run")
	flagS       = flag.Int("s", 10, "concurrent SMTP sessions")
	flagL       = flag.Int("l", 4096, "message size in bytes (smtp-source -l: payload)")
	flagMembers = flag.Int("members", 1000, "members the B workload cycles through")
	flagRounds  = flag.Int("rounds", 5, "rounds; each runs A and B on both pipelines")
	flagWarm    = flag.Int("warmup", 50, "messages sent (and delivered) before each timed run")
	flagOnly    = flag.String("only", "", `"idbridge" or "postfix": run one pipeline only (the ratio needs both)`)
)

func main() {
	flag.Parse()
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	if os.Geteuid() != 0 {
		log.Fatal("mailbench needs root: it runs a private Postfix instance")
	}
	for _, p := range []string{"postfix", "smtp-sink", "smtp-source", "slapd", "ldapadd"} {
		if mt.FindProgram(p) == "" {
			log.Fatalf("%s is not installed (scripts/install-peers)", p)
		}
	}
	t := &runner{}
	defer t.cleanup()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		log.Print("interrupted; stopping daemons")
		t.cleanup()
		os.Exit(1)
	}()

	members := make([]string, *flagMembers)
	for i := range members {
		members[i] = fmt.Sprintf("u%04d", i)
	}
	var pipes []pipeline

	// (1) idbridge, delivering to its own sink.
	if *flagOnly != "postfix" {
		binDir := mt.PublicDir(t, "bench-bin", 0o755)
		bin, err := mt.BuildIdbridge(binDir)
		if err != nil {
			t.Fatalf("%v", err)
		}
		sinkI := mt.StartSink(t, 256)
		idb := mt.NewIdbridge(t, bin, mt.Config{Networks: []string{"127.0.0.0/8"}, Delivery: "smarthost", Smarthost: sinkI.Addr})
		log.Printf("idbridge: adding %d members with `idbridge user add`", len(members)+1)
		idb.AddUser(t, "alice", "alice@real.test")
		addMembers(t, idb, members)
		idb.Start(t)
		pipes = append(pipes, pipeline{"idbridge", idb.SMTPAddr, sinkI})
	}
	if *flagOnly == "idbridge" {
		runBench(t, pipes, members, nil)
		return
	}

	// (2) Postfix with an LDAP alias map on slapd, delivering to its sink.
	sinkP := mt.StartSink(t, 256)
	ldap := mt.StartSlapd(t)
	ldap.Add(t, ldif(ldap.Suffix, append([]string{"alice"}, members...)))
	mapDir := mt.PublicDir(t, "bench-map", 0o755)
	mapFile := filepath.Join(mapDir, "ldap-aliases.cf")
	os.WriteFile(mapFile, []byte(fmt.Sprintf(`server_host = %s
search_base = ou=users,%s
query_filter = (uid=%%u)
result_attribute = mail
domain = %s
bind = no
version = 3
`, ldap.URL, ldap.Suffix, vd)), 0o644)
	pf := mt.StartPostfix(t, fmt.Sprintf(`virtual_alias_domains = %s
virtual_alias_maps = ldap:%s
relayhost = [127.0.0.1]:%d`, vd, mapFile, mt.Port(sinkP.Addr)))

	pipes = append(pipes, pipeline{"postfix+ldap", pf.Addr, sinkP})
	runBench(t, pipes, members, pf)
}

type pipeline struct {
	name string
	addr string
	sink *mt.Sink
}

func runBench(t mt.TB, pipes []pipeline, members []string, pf *mt.Postfix) {
	type result struct {
		workload, pipe  string
		accept, deliver time.Duration
	}
	var results []result
	for round := 1; round <= *flagRounds; round++ {
		for _, w := range []string{"A", "B"} {
			order := slices.Clone(pipes)
			if round%2 == 0 {
				slices.Reverse(order) // neither pipeline always runs second
			}
			for _, p := range order {
				warm := countFiles(t, p.sink)
				sendGo(t, p.addr, *flagWarm, *flagS, 1000, func(i int) string { return members[i%len(members)] + "@" + vd })
				waitFiles(t, p.sink, warm+*flagWarm, 5*time.Minute)
				base := countFiles(t, p.sink)
				start := time.Now()
				if w == "A" {
					smtpSource(t, p.addr, *flagN, *flagS, *flagL)
				} else {
					sendGo(t, p.addr, *flagN, *flagS, *flagL, func(i int) string { return members[i%len(members)] + "@" + vd })
				}
				accept := time.Since(start)
				waitFiles(t, p.sink, base+*flagN, 10*time.Minute)
				deliver := time.Since(start)
				results = append(results, result{w, p.name, accept, deliver})
				log.Printf("round %d workload %s %-13s accepted in %7.2fs, delivered in %7.2fs: %7.1f msg/s (load %s)",
					round, w, p.name, accept.Seconds(), deliver.Seconds(), float64(*flagN)/deliver.Seconds(), loadavg())
			}
		}
	}
	if pf != nil && !mt.Poll(time.Minute, 100*time.Millisecond, pf.QueueEmpty) {
		log.Print("warning: Postfix's queue is not empty at the end")
	}

	// Report: the median of the rounds.
	fmt.Printf("\nmachine: %d CPUs (%s), %s, Go %s; date %s\n", runtime.NumCPU(), cpuModel(),
		strings.TrimSpace(run("uname", "-sr")), runtime.Version(), time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Printf("messages per run %d, size %d bytes, %d sessions, %d members (B), %d rounds (median shown)\n\n",
		*flagN, *flagL, *flagS, *flagMembers, *flagRounds)
	fmt.Println("| Workload | Pipeline | accepted (s) | delivered to sink (s) | delivered msg/s | min–max msg/s |")
	fmt.Println("|---|---|---:|---:|---:|---:|")
	rate := map[string]float64{}
	for _, w := range []string{"A", "B"} {
		for _, p := range pipes {
			var acc, del []time.Duration
			for _, r := range results {
				if r.workload == w && r.pipe == p.name {
					acc, del = append(acc, r.accept), append(del, r.deliver)
				}
			}
			a, d := median(acc), median(del)
			rate[w+p.name] = float64(*flagN) / d.Seconds()
			fmt.Printf("| %s | %s | %.2f | %.2f | %.1f | %.1f–%.1f |\n", w, p.name, a.Seconds(), d.Seconds(), rate[w+p.name],
				float64(*flagN)/slices.Max(del).Seconds(), float64(*flagN)/slices.Min(del).Seconds())
		}
	}
	fmt.Println()
	for _, w := range []string{"A", "B"} {
		if len(pipes) < 2 {
			break
		}
		fmt.Printf("ratio idbridge/postfix, workload %s: %.2f\n", w, rate[w+"idbridge"]/rate[w+"postfix+ldap"])
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return "?"
	}
	return f[0]
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			_, v, _ := strings.Cut(l, ":")
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func run(name string, args ...string) string {
	out, _ := exec.Command(name, args...).Output()
	return string(out)
}

// addMembers creates the members with the CLI, a few processes at a time.
func addMembers(t mt.TB, d *mt.Idbridge, names []string) {
	var wg sync.WaitGroup
	ch := make(chan string)
	var firstErr atomic.Value
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range ch {
				if _, err := d.CLI("correct horse battery staple\n", "user", "add", n, "--email", n+"@real.test",
					"--first-name", "F", "--last-name", "L", "--password-stdin"); err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	for _, n := range names {
		ch <- n
	}
	close(ch)
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		t.Fatalf("user add: %v", err)
	}
}

// ldif is the OpenMRS ID layout: uid=<name>,ou=users with a mail attribute.
func ldif(suffix string, names []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: openmrs\ndc: openmrs\n\n", suffix)
	fmt.Fprintf(&b, "dn: ou=users,%s\nobjectClass: organizationalUnit\nou: users\n\n", suffix)
	for _, n := range names {
		fmt.Fprintf(&b, "dn: uid=%s,ou=users,%s\nobjectClass: inetOrgPerson\nobjectClass: extensibleObject\nuid: %s\ncn: F\nsn: L\ndisplayName: F L\nmail: %s@real.test\n\n",
			n, suffix, n, n)
	}
	return b.String()
}

// smtpSource runs smtp-source over reused connections (-d) to one recipient.
func smtpSource(t mt.TB, addr string, n, sessions, size int) {
	args := []string{"-d", "-m", fmt.Sprint(n), "-s", fmt.Sprint(sessions), "-l", fmt.Sprint(size),
		"-f", sender, "-t", "alice@" + vd, "-M", "mta.atlassian.net", addr}
	if out, err := exec.Command(mt.FindProgram("smtp-source"), args...).CombinedOutput(); err != nil {
		t.Fatalf("smtp-source %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// sendGo sends n messages over `sessions` connections, recipient rcpt(i).
func sendGo(t mt.TB, addr string, n, sessions, size int, rcpt func(int) string) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	stamp := time.Now().UnixNano()
	for range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := mt.Dial(addr, "")
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			defer c.Close()
			if err := c.Hello("mta.atlassian.net"); err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				to := rcpt(i)
				msg := mt.AtlassianMessage(sender, to, fmt.Sprintf("bench.%d.%d@atlassian.net", stamp, i), size)
				r, err := c.Send(sender, []string{to}, msg)
				if err == nil && r.Code != 250 {
					err = fmt.Errorf("%s: %v", to, r)
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		t.Fatalf("send to %s: %v", addr, err)
	}
}

func countFiles(t mt.TB, s *mt.Sink) int {
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return len(ents)
}

func waitFiles(t mt.TB, s *mt.Sink, n int, timeout time.Duration) {
	if !mt.Poll(timeout, 10*time.Millisecond, func() bool { return countFiles(t, s) >= n }) {
		t.Fatalf("sink %s has %d of %d messages after %v", s.Addr, countFiles(t, s), n, timeout)
	}
}
