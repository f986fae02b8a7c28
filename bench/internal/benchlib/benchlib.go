// Package benchlib holds what idbridge's benchmark programs share: building
// the binary, writing a production-shaped config for a loopback instance,
// starting `idbridge serve --config` and waiting for /readyz, and reading a
// process's resident memory from /proc. Benchmarks measure and print; they
// never pass or fail on a figure.
package benchlib

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Build compiles ./cmd/idbridge into dir and returns the binary's path. A
// non-empty prebuilt is returned as it is.
func Build(dir, prebuilt string) (string, error) {
	if prebuilt != "" {
		return prebuilt, nil
	}
	bin := filepath.Join(dir, "idbridge")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/idbridge/idbridge/cmd/idbridge")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/idbridge: %v\n%s", err, out)
	}
	return bin, nil
}

// FreeAddr returns a loopback address that was free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Config is the instance a benchmark runs.
type Config struct {
	Dir        string // data_dir; the SQLite file is Dir/idbridge.db
	HTTPAddr   string // 127.0.0.1:PORT
	SMTPAddr   string // "" : no forwarder
	Argon2     [3]int // memory KiB, iterations, parallelism
	AllowWeak  bool   // argon2 below the OWASP minimum (account creation only)
	Extra      string // YAML appended as it is (e.g. a saml: section)
	ConfigPath string // where Write put it
}

// Write writes the config file into c.Dir and sets c.ConfigPath.
func (c *Config) Write() error {
	fwd := `  listen: ""`
	if c.SMTPAddr != "" {
		fwd = fmt.Sprintf("  listen: %q\n  operator_address: infra@bench.example.org", c.SMTPAddr)
	}
	weak := ""
	if c.AllowWeak {
		weak = ", allow_weak: true"
	}
	y := fmt.Sprintf(`# Written by idbridge's bench programs.
base_url: http://%s
virtual_domain: id.bench.example.org
store: sqlite:%s
data_dir: %s
http:
  listen: %q
mail_out:
  from: "bench <noreply@bench.example.org>"
  smarthost: {address: "127.0.0.1:9", tls: none}
forward:
%s
accounts:
  argon2: {memory_kib: %d, iterations: %d, parallelism: %d%s}
log:
  level: warn
%s`, c.HTTPAddr, filepath.Join(c.Dir, "idbridge.db"), c.Dir, c.HTTPAddr, fwd, c.Argon2[0], c.Argon2[1], c.Argon2[2], weak, c.Extra)
	c.ConfigPath = filepath.Join(c.Dir, "idbridge.yaml")
	return os.WriteFile(c.ConfigPath, []byte(y), 0o600)
}

// Server is a running `idbridge serve --config`.
type Server struct {
	Cmd     *exec.Cmd
	Started time.Time     // just before exec
	Ready   time.Duration // from Started to the first 200 from /readyz
	exited  chan error
}

// Serve starts `bin serve --config path` and waits (up to 60 s) for /readyz
// on httpAddr to answer 200, polling every millisecond.
func Serve(bin, configPath, httpAddr string, stderr *os.File) (*Server, error) {
	s := &Server{Cmd: exec.Command(bin, "serve", "--config", configPath), exited: make(chan error, 1)}
	s.Cmd.Stdout = stderr
	s.Cmd.Stderr = stderr
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://" + httpAddr + "/readyz"
	s.Started = time.Now()
	if err := s.Cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.exited <- s.Cmd.Wait() }()
	deadline := s.Started.Add(60 * time.Second)
	for {
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.Ready = time.Since(s.Started)
				return s, nil
			}
		}
		select {
		case err := <-s.exited:
			return nil, fmt.Errorf("idbridge serve exited before /readyz answered: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			s.Cmd.Process.Kill()
			return nil, errors.New("idbridge serve: /readyz did not answer 200 in 60 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// Stop sends SIGTERM and waits up to 10 s, then kills.
func (s *Server) Stop() error {
	s.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		return err
	case <-time.After(10 * time.Second):
		s.Cmd.Process.Kill()
		<-s.exited
		return errors.New("idbridge serve did not stop within 10 s of SIGTERM; killed")
	}
}

// ProcStatus returns the kB value of a field of /proc/PID/status (VmRSS,
// VmHWM …).
func ProcStatus(pid int, field string) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == field {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// Machine describes the host: CPU model and count.
func Machine() string {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	return model
}

// Median of the durations (they are sorted in place).
func Median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	if len(d)%2 == 1 {
		return d[len(d)/2]
	}
	return (d[len(d)/2-1] + d[len(d)/2]) / 2
}

// MedianInt of the values (sorted in place).
func MedianInt(v []int) int {
	if len(v) == 0 {
		return 0
	}
	sort.Ints(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's CPU times (100 on
// every Linux architecture Go supports).
const clockTick = 10 * time.Millisecond

// ProcCPU returns the user+system CPU time the process has used so far.
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	return time.Duration(ut+st) * clockTick, nil
}

// SelfCPU returns the user+system CPU time of this process so far.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// LoadAvg returns the first three fields of /proc/loadavg.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
