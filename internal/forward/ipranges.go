package forward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"
)

// maxIPRangesBytes bounds an IP-ranges document; Atlassian's is well under
// one megabyte.
const maxIPRangesBytes = 16 << 20

// ParseIPRanges reads Atlassian's published IP-ranges JSON
// ({"items":[{"cidr":"…","product":["email",…],"direction":["egress",…]}]})
// and returns the prefixes of the items whose product includes "email" and
// whose direction includes "egress": the addresses Atlassian sends mail from.
//
// A document that is not such JSON, that has an unparsable cidr in a
// matching item, or that names no matching item at all is an error, so that
// a broken download never replaces a good list with an empty one.
func ParseIPRanges(data []byte) ([]netip.Prefix, error) {
	var doc struct {
		Items *[]struct {
			CIDR      string   `json:"cidr"`
			Product   []string `json:"product"`
			Direction []string `json:"direction"`
		} `json:"items"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse ip ranges: %w", err)
	}
	if doc.Items == nil {
		return nil, errors.New("parse ip ranges: no \"items\" list")
	}
	var out []netip.Prefix
	for i, it := range *doc.Items {
		if !slices.Contains(it.Product, "email") || !slices.Contains(it.Direction, "egress") {
			continue
		}
		p, err := netip.ParsePrefix(it.CIDR)
		if err != nil {
			return nil, fmt.Errorf("parse ip ranges: item %d: %w", i, err)
		}
		out = append(out, p.Masked())
	}
	if len(out) == 0 {
		return nil, errors.New("parse ip ranges: no item with product \"email\" and direction \"egress\"")
	}
	return out, nil
}

// ipRanges keeps the prefixes from every configured file and URL. Each
// source keeps its last good list: a source that turns invalid or
// unreachable is logged and keeps what it had.
type ipRanges struct {
	files  []string
	urls   []string
	client *http.Client
	log    *slog.Logger

	// fileMu and urlMu serialise the reads of each kind, so that a slow
	// fetch can never overwrite the result of a later one (a SIGHUP
	// reload racing the timer).
	fileMu sync.Mutex
	urlMu  sync.Mutex

	mu      sync.RWMutex
	sources map[string][]netip.Prefix // by file name or URL: the last good list
	mtimes  map[string]time.Time      // by file name: mtime of the last read
	all     []netip.Prefix
}

func newIPRanges(files, urls []string, client *http.Client, log *slog.Logger) *ipRanges {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	return &ipRanges{
		files:   files,
		urls:    urls,
		client:  client,
		log:     log,
		sources: map[string][]netip.Prefix{},
		mtimes:  map[string]time.Time{},
	}
}

// Contains reports whether ip is in any list.
func (r *ipRanges) Contains(ip netip.Addr) bool {
	ip = ip.Unmap()
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, p := range r.all {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Incomplete reports whether a configured file or URL has never loaded: the
// allow-list may then lack senders that it should hold, and a refusal must be
// temporary (the sender retries) rather than permanent.
func (r *ipRanges) Incomplete() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, src := range append(append([]string(nil), r.files...), r.urls...) {
		if _, ok := r.sources[src]; !ok {
			return true
		}
	}
	return false
}

// loadFiles reads every file whose modification time differs from the one
// last read (or every file, when force is set). It returns the errors joined.
func (r *ipRanges) loadFiles(force bool) error {
	r.fileMu.Lock()
	defer r.fileMu.Unlock()
	var errs []error
	for _, f := range r.files {
		st, err := os.Stat(f)
		if err != nil {
			errs = append(errs, r.fail(f, fmt.Errorf("ip ranges file: %w", err)))
			continue
		}
		r.mu.RLock()
		last, seen := r.mtimes[f]
		r.mu.RUnlock()
		if !force && seen && last.Equal(st.ModTime()) {
			continue
		}
		data, err := readLimited(f)
		if err == nil {
			var ps []netip.Prefix
			if ps, err = ParseIPRanges(data); err == nil {
				r.set(f, ps, st.ModTime())
				continue
			}
		}
		// Remember the mtime of the bad version too, so that it is not
		// re-read (and re-logged) on every check until it changes again.
		r.mu.Lock()
		r.mtimes[f] = st.ModTime()
		r.mu.Unlock()
		errs = append(errs, r.fail(f, fmt.Errorf("ip ranges file %s: %w", f, err)))
	}
	return errors.Join(errs...)
}

func readLimited(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllLimited(f)
}

func readAllLimited(rd io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(rd, maxIPRangesBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxIPRangesBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxIPRangesBytes)
	}
	return data, nil
}

// fetchURLs downloads every URL. It returns the errors joined.
func (r *ipRanges) fetchURLs(ctx context.Context) error {
	r.urlMu.Lock()
	defer r.urlMu.Unlock()
	var errs []error
	for _, u := range r.urls {
		ps, err := r.fetch(ctx, u)
		if err != nil {
			errs = append(errs, r.fail(u, fmt.Errorf("ip ranges url %s: %w", u, err)))
			continue
		}
		r.set(u, ps, time.Time{})
	}
	return errors.Join(errs...)
}

func (r *ipRanges) fetch(ctx context.Context, u string) ([]netip.Prefix, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("http status %s", resp.Status)
	}
	data, err := readAllLimited(resp.Body)
	if err != nil {
		return nil, err
	}
	return ParseIPRanges(data)
}

func (r *ipRanges) set(source string, ps []netip.Prefix, mtime time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sources[source] = ps
	if !mtime.IsZero() {
		r.mtimes[source] = mtime
	}
	var all []netip.Prefix
	for _, s := range r.sources {
		all = append(all, s...)
	}
	r.all = all
	r.log.Info("ip ranges loaded", "source", source, "prefixes", len(ps), "total", len(all))
}

func (r *ipRanges) fail(source string, err error) error {
	r.mu.RLock()
	kept := len(r.sources[source])
	r.mu.RUnlock()
	r.log.Error("ip ranges not updated; keeping the last good list", "source", source, "kept_prefixes", kept, "err", err)
	return err
}

// run checks the files every fileEvery and downloads the URLs every urlEvery
// until ctx ends. The URLs are fetched once at the start.
func (r *ipRanges) run(ctx context.Context, fileEvery, urlEvery time.Duration) {
	if len(r.files) == 0 && len(r.urls) == 0 {
		return
	}
	if len(r.urls) > 0 {
		r.fetchURLs(ctx)
	}
	fileTick := time.NewTicker(fileEvery)
	defer fileTick.Stop()
	urlTick := time.NewTicker(urlEvery)
	defer urlTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-fileTick.C:
			r.loadFiles(false)
		case <-urlTick.C:
			r.fetchURLs(ctx)
		}
	}
}
