// Command footprint measures what an idle idbridge costs: resident memory
// (VmRSS from /proc/PID/status) of `idbridge serve --config` with 12,000
// accounts in its SQLite store, and the time from starting the process to
// /readyz answering 200 (issue 2's goals: at most 40 MB and 0.3 s).
//
// It builds ./cmd/idbridge (or takes -binary), writes a production-shaped
// config on loopback (default argon2id parameters, the forwarder listening),
// and fills the store with -accounts verified accounts through
// internal/account and internal/store/open directly, hashing their passwords
// with deliberately low argon2id parameters (m=64 KiB, t=1) so that filling
// takes seconds instead of minutes; the hash parameters do not change what
// an idle server holds. Then, -runs times, it starts serve, times /readyz,
// waits -idle, and reads VmRSS (and VmHWM, the peak). It prints every run
// and the medians.
//
//	go run ./bench/footprint [-accounts 12000] [-runs 7] [-idle 10s] [-argon2-memory KiB] [-binary PATH]
//
// -argon2-memory lowers the serve config's argon2id memory, to show how much
// of the idle footprint is argon2's working memory (see docs/benchmarks.md).
//
// A benchmark, not a test: it prints numbers and never fails on them.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/idbridge/idbridge/bench/internal/benchlib"
	"github.com/idbridge/idbridge/internal/account"
	"github.com/idbridge/idbridge/internal/password"
	"github.com/idbridge/idbridge/internal/store/open"
)

func main() {
	accounts := flag.Int("accounts", 12000, "accounts in the store")
	runs := flag.Int("runs", 7, "server starts to measure")
	memKiB := flag.Int("argon2-memory", 19456, "argon2id memory (KiB) in the serve config; the default is OWASP's")
	idle := flag.Duration("idle", 10*time.Second, "how long the server idles before VmRSS is read")
	binary := flag.String("binary", "", "idbridge binary (default: go build ./cmd/idbridge)")
	keep := flag.Bool("keep", false, "keep the temporary folder")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("bench/footprint: ")

	dir, err := os.MkdirTemp("", "idbridge-bench-footprint-")
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
	httpAddr, err := benchlib.FreeAddr()
	if err != nil {
		fatal(err)
	}
	smtpAddr, err := benchlib.FreeAddr()
	if err != nil {
		fatal(err)
	}
	cfg := benchlib.Config{Dir: dir, HTTPAddr: httpAddr, SMTPAddr: smtpAddr, Argon2: [3]int{*memKiB, 2, 1}, AllowWeak: *memKiB < 19456}
	if err := cfg.Write(); err != nil {
		fatal(err)
	}

	start := time.Now()
	if err := fill(dir+"/idbridge.db", *accounts); err != nil {
		fatal(err)
	}
	log.Printf("filled the store with %d accounts in %v", *accounts, time.Since(start).Round(time.Millisecond))
	if st, err := os.Stat(dir + "/idbridge.db"); err == nil {
		log.Printf("SQLite file: %.1f MB", float64(st.Size())/1e6)
	}

	logf, err := os.Create(dir + "/serve.log")
	if err != nil {
		fatal(err)
	}
	defer logf.Close()
	var ready []time.Duration
	var rss, hwm []int
	for r := range *runs {
		srv, err := benchlib.Serve(bin, cfg.ConfigPath, httpAddr, logf)
		if err != nil {
			fatal(err)
		}
		time.Sleep(*idle)
		pid := srv.Cmd.Process.Pid
		kb, err1 := benchlib.ProcStatus(pid, "VmRSS")
		peak, err2 := benchlib.ProcStatus(pid, "VmHWM")
		anon, _ := benchlib.ProcStatus(pid, "RssAnon")
		file, _ := benchlib.ProcStatus(pid, "RssFile")
		if err := srv.Stop(); err != nil {
			log.Printf("stop: %v", err)
		}
		if err1 != nil || err2 != nil {
			fatal(err1, err2)
		}
		log.Printf("run %d: /readyz 200 after %v; idle VmRSS %.1f MB (RssAnon %.1f, RssFile %.1f; peak VmHWM %.1f MB); load %s",
			r+1, srv.Ready.Round(100*time.Microsecond), mb(kb), mb(anon), mb(file), mb(peak), benchlib.LoadAvg())
		ready, rss, hwm = append(ready, srv.Ready), append(rss, kb), append(hwm, peak)
	}
	fmt.Printf("machine:          %s, %d logical CPUs, load %s\n", benchlib.Machine(), runtime.NumCPU(), benchlib.LoadAvg())
	fmt.Printf("accounts:         %d (SQLite); serve's argon2id m=%d,t=2,p=1\n", *accounts, *memKiB)
	fmt.Printf("runs:             %d, idle %v before reading VmRSS\n", *runs, *idle)
	fmt.Printf("start to /readyz: median %v (goal <= 300ms)\n", benchlib.Median(ready).Round(100*time.Microsecond))
	fmt.Printf("idle VmRSS:       median %.1f MB (goal <= 40 MB); peak VmHWM median %.1f MB\n",
		mb(benchlib.MedianInt(rss)), mb(benchlib.MedianInt(hwm)))
}

// mb converts kB (as /proc gives them, KiB) to MB (10^6 bytes).
func mb(kb int) float64 { return float64(kb) * 1024 / 1e6 }

// fill creates n verified accounts in the SQLite file at path, through the
// account rules (validation, audit) but with cheap password hashes.
func fill(path string, n int) error {
	ctx := context.Background()
	st, err := open.Open(ctx, "sqlite:"+path)
	if err != nil {
		return err
	}
	defer st.Close()
	acc := account.New(st, nil, account.Config{
		BaseURL:       "http://127.0.0.1",
		VirtualDomain: "id.bench.example.org",
		Argon2:        password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1},
	}, nil, nil)
	const workers = 4
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				name := fmt.Sprintf("member%05d", i)
				_, err := acc.Create(ctx, account.CreateInput{Username: name, FirstName: "Member", LastName: fmt.Sprint(i),
					Email: name + "@example.org", Password: fmt.Sprintf("member password %d", i)}, "bench")
				if err != nil {
					errs <- fmt.Errorf("create %s: %w", name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// cleanup removes the temporary folder; fatal calls it, since log.Fatal
// skips deferred calls.
var cleanup = func() {}

func fatal(v ...any) {
	cleanup()
	log.Fatal(v...)
}
