// Package queue is idbridge's durable on-disk mail queue, in the manner of
// chasquid's: a message is acknowledged (the SMTP server answers 250) only
// after Put has written and fsynced its data and envelope files and the
// directory holding them, so a crash loses nothing acknowledged (at worst a
// message is delivered twice). Delivery follows RFC 5321 section 4.5.4.1:
// temporary failures are retried with exponential backoff and jitter until
// the message's lifetime ends; then, or at once on a permanent failure, a
// delivery status notification (RFC 3464 multipart/report, RFC 3463 status
// codes) goes to the original sender, never to the null sender.
//
// Each message is two files in the queue directory: ID.data (the message,
// written once) and ID.env (JSON envelope and per-recipient state, replaced
// atomically after every attempt). An .env file is the commit mark: data
// without an envelope was never acknowledged and is removed on Open.
package queue

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Courier delivers one message to one recipient. permanent reports that
// retrying cannot help (an SMTP 5xx); any other error is retried.
type Courier interface {
	Deliver(ctx context.Context, from, to string, data []byte) (err error, permanent bool)
}

// Envelope is the SMTP envelope of a queued message.
type Envelope struct {
	// From is the envelope sender; "" is the null sender (no DSN is ever sent to it).
	From string
	// To lists the recipients to deliver to.
	To []string
	// Original optionally gives, index by index with To, the address the
	// sender used (the virtual address). DSNs name it instead of To, so
	// that a bounce does not disclose a member's real address.
	Original []string
}

// Status of one recipient.
type Status string

// Recipient states.
const (
	Pending   Status = "pending"
	Delivered Status = "delivered"
	Failed    Status = "failed"
)

// Recipient is the delivery state of one recipient of an item.
type Recipient struct {
	Address     string    `json:"address"`
	Original    string    `json:"original,omitempty"`
	Status      Status    `json:"status"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	// Expired marks a failure because the lifetime ended, not a permanent error.
	Expired bool `json:"expired,omitempty"`
	// Notified is set once a DSN for this failed recipient was queued.
	Notified bool `json:"notified,omitempty"`
}

// Item is one queued message, as shown by List.
type Item struct {
	ID         string      `json:"id"`
	From       string      `json:"from"`
	Recipients []Recipient `json:"recipients"`
	Created    time.Time   `json:"created"`
	Size       int64       `json:"size"`
}

// Stats are monotonically increasing counters (per recipient) and the
// current queue depth (messages), for Prometheus CounterFunc/GaugeFunc.
type Stats struct {
	Queued, Delivered, Deferred, Bounced uint64
	Depth                                int
}

// Config configures a Queue. Dir and Courier are required.
type Config struct {
	Dir     string
	Courier Courier
	Logger  *slog.Logger // nil: slog.Default()
	// Hostname names this MTA in DSNs (Reporting-MTA, From: MAILER-DAEMON@Hostname).
	Hostname string
	// Lifetime is how long temporary failures are retried (default 5 days).
	Lifetime time.Duration
	// MinRetry and MaxRetry bound the exponential backoff (defaults 1 minute, 1 hour).
	MinRetry, MaxRetry time.Duration
	// PerDomain caps concurrent deliveries per recipient domain (default 20,
	// Postfix's default_destination_concurrency_limit).
	PerDomain int
	// AttemptTimeout caps one delivery attempt (default 15 minutes).
	AttemptTimeout time.Duration
	// Now replaces time.Now, for tests.
	Now func() time.Time
}

// Queue is a durable mail queue. Put may be called before Run; delivery
// starts with Run.
type Queue struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	items   map[string]*item
	runCtx  context.Context // nil until Run
	wg      sync.WaitGroup
	domains map[string]chan struct{}

	queued, delivered, deferred, bounced atomic.Uint64
}

type item struct {
	mu sync.Mutex // guards Item while a worker updates it
	Item
}

const (
	envExt  = ".env"
	dataExt = ".data"
	tmpExt  = ".tmp"
)

// Open loads every item in cfg.Dir (creating it if needed), removes the
// leftovers of interrupted writes, and returns the queue.
func Open(cfg Config) (*Queue, error) {
	if cfg.Dir == "" || cfg.Courier == nil {
		return nil, errors.New("queue: Dir and Courier are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = 5 * 24 * time.Hour
	}
	if cfg.MinRetry <= 0 {
		cfg.MinRetry = time.Minute
	}
	if cfg.MaxRetry < cfg.MinRetry {
		cfg.MaxRetry = max(time.Hour, cfg.MinRetry)
	}
	if cfg.PerDomain <= 0 {
		cfg.PerDomain = 20
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 15 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("queue: create %s: %w", cfg.Dir, err)
	}
	q := &Queue{cfg: cfg, log: cfg.Logger, items: map[string]*item{}, domains: map[string]chan struct{}{}}
	ents, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("queue: read %s: %w", cfg.Dir, err)
	}
	have := map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, envExt) && validID(strings.TrimSuffix(name, envExt)) {
			have[strings.TrimSuffix(name, envExt)] = true
		}
	}
	for _, e := range ents {
		name := e.Name()
		path := filepath.Join(cfg.Dir, name)
		switch {
		case strings.HasSuffix(name, tmpExt):
			os.Remove(path) // an interrupted write, never acknowledged
		case strings.HasSuffix(name, dataExt):
			if id := strings.TrimSuffix(name, dataExt); validID(id) && !have[id] {
				q.log.Info("queue: removing unacknowledged data", "queue_id", id)
				os.Remove(path)
			}
		case strings.HasSuffix(name, envExt):
			id := strings.TrimSuffix(name, envExt)
			if !validID(id) {
				continue
			}
			it, err := readEnv(path)
			if err == nil && it.ID != id {
				err = fmt.Errorf("id %q in file", it.ID)
			}
			if err == nil {
				_, err = os.Stat(filepath.Join(cfg.Dir, id+dataExt))
			}
			if err != nil {
				// Kept on disk for an operator to inspect; never deleted silently.
				q.log.Error("queue: skipping unreadable item", "queue_id", id, "err", err)
				continue
			}
			q.items[id] = &item{Item: *it}
		}
	}
	return q, nil
}

func readEnv(path string) (*Item, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var it Item
	if err := json.Unmarshal(b, &it); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return &it, nil
}

// ReadDir lists the items in a queue directory without opening it for
// delivery (for `idbridge mailq` while the server runs).
func ReadDir(dir string) ([]Item, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("queue: read %s: %w", dir, err)
	}
	var out []Item
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), envExt)
		if !ok || !validID(id) {
			continue
		}
		it, err := readEnv(filepath.Join(dir, e.Name()))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // delivered meanwhile
			}
			return nil, fmt.Errorf("queue: %w", err)
		}
		out = append(out, *it)
	}
	sortItems(out)
	return out, nil
}

func sortItems(items []Item) {
	sort.Slice(items, func(i, j int) bool {
		if !items[i].Created.Equal(items[j].Created) {
			return items[i].Created.Before(items[j].Created)
		}
		return items[i].ID < items[j].ID
	})
}

var idEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

func newID() string {
	b := make([]byte, 10)
	rand.Read(b)
	return idEncoding.EncodeToString(b)
}

func validID(id string) bool {
	if len(id) != 16 {
		return false
	}
	_, err := idEncoding.DecodeString(id)
	return err == nil
}

// Put stores a message durably and schedules its delivery. It returns only
// after the data, the envelope and the directory entry are fsynced: answer
// 250 only when it returns no error.
func (q *Queue) Put(ctx context.Context, env Envelope, data []byte) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("queue: put: %w", err)
	}
	if len(env.To) == 0 {
		return "", errors.New("queue: put: no recipients")
	}
	if len(env.Original) != 0 && len(env.Original) != len(env.To) {
		return "", errors.New("queue: put: Original and To differ in length")
	}
	for _, a := range append([]string{env.From}, env.To...) {
		if strings.ContainsAny(a, "\r\n\x00") {
			return "", fmt.Errorf("queue: put: invalid address %q", a)
		}
	}
	if env.From == "<>" {
		env.From = ""
	}
	now := q.cfg.Now()
	it := &item{Item: Item{ID: newID(), From: env.From, Created: now, Size: int64(len(data))}}
	for i, to := range env.To {
		r := Recipient{Address: to, Status: Pending, NextAttempt: now}
		if len(env.Original) > 0 {
			r.Original = env.Original[i]
		}
		it.Recipients = append(it.Recipients, r)
	}
	if err := writeFile(filepath.Join(q.cfg.Dir, it.ID+dataExt), data); err != nil {
		return "", fmt.Errorf("queue: put: %w", err)
	}
	if err := q.writeEnv(&it.Item, false); err != nil {
		os.Remove(filepath.Join(q.cfg.Dir, it.ID+dataExt))
		return "", fmt.Errorf("queue: put: %w", err)
	}
	if err := syncDir(q.cfg.Dir); err != nil {
		os.Remove(filepath.Join(q.cfg.Dir, it.ID+envExt))
		os.Remove(filepath.Join(q.cfg.Dir, it.ID+dataExt))
		return "", fmt.Errorf("queue: put: %w", err)
	}
	q.queued.Add(uint64(len(env.To)))
	q.log.Info("queued", "queue_id", it.ID, "from", it.From, "to", env.To, "size", len(data))
	q.mu.Lock()
	q.items[it.ID] = it
	if q.runCtx != nil && q.runCtx.Err() == nil {
		q.launch(it)
	}
	q.mu.Unlock()
	return it.ID, nil
}

// writeEnv replaces the envelope file atomically; with syncdir the rename
// is made durable too (Put syncs the directory once for both files).
func (q *Queue) writeEnv(it *Item, syncdir bool) error {
	b, err := json.Marshal(it)
	if err != nil {
		return fmt.Errorf("encode envelope: %w", err)
	}
	if err := writeFile(filepath.Join(q.cfg.Dir, it.ID+envExt), b); err != nil {
		return err
	}
	if syncdir {
		return syncDir(q.cfg.Dir)
	}
	return nil
}

// writeFile writes path atomically: a temporary file, fsync, rename.
// The caller fsyncs the directory.
func writeFile(path string, data []byte) (err error) {
	tmp := path + "." + newID() + tmpExt
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

// List returns a snapshot of the queued items, oldest first.
func (q *Queue) List() []Item {
	q.mu.Lock()
	its := make([]*item, 0, len(q.items))
	for _, it := range q.items {
		its = append(its, it)
	}
	q.mu.Unlock()
	out := make([]Item, 0, len(its))
	for _, it := range its {
		it.mu.Lock()
		c := it.Item
		c.Recipients = append([]Recipient(nil), it.Recipients...)
		it.mu.Unlock()
		out = append(out, c)
	}
	sortItems(out)
	return out
}

// Stats returns the counters and the current depth.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	depth := len(q.items)
	q.mu.Unlock()
	return Stats{
		Queued: q.queued.Load(), Delivered: q.delivered.Load(),
		Deferred: q.deferred.Load(), Bounced: q.bounced.Load(), Depth: depth,
	}
}

// Run delivers queued items until ctx is cancelled, then waits for the
// attempts in progress to end and returns.
func (q *Queue) Run(ctx context.Context) error {
	q.mu.Lock()
	if q.runCtx != nil {
		q.mu.Unlock()
		return errors.New("queue: Run called twice")
	}
	q.runCtx = ctx
	for _, it := range q.items {
		q.launch(it)
	}
	q.mu.Unlock()
	<-ctx.Done()
	q.wg.Wait()
	return nil
}

// launch starts the worker of it; q.mu is held.
func (q *Queue) launch(it *item) {
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		q.work(q.runCtx, it)
	}()
}

func domainOf(addr string) string {
	return strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
}

func (q *Queue) domainSem(domain string) chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	s, ok := q.domains[domain]
	if !ok {
		s = make(chan struct{}, q.cfg.PerDomain)
		q.domains[domain] = s
	}
	return s
}

// work delivers one item until every recipient is delivered or failed.
func (q *Queue) work(ctx context.Context, it *item) {
	for {
		data, err := os.ReadFile(filepath.Join(q.cfg.Dir, it.ID+dataExt))
		if err != nil {
			q.log.Error("queue: cannot read message; left in queue", "queue_id", it.ID, "err", err)
			return
		}
		q.attempt(ctx, it, data)
		if ctx.Err() != nil {
			return
		}
		q.notify(ctx, it, data)

		it.mu.Lock()
		next, pending := time.Time{}, false
		for _, r := range it.Recipients {
			if r.Status == Pending {
				if !pending || r.NextAttempt.Before(next) {
					next = r.NextAttempt
				}
				pending = true
			}
		}
		it.mu.Unlock()
		if !pending {
			q.remove(it)
			return
		}
		wait := next.Sub(q.cfg.Now())
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

type result struct {
	idx       int
	err       error
	permanent bool
}

// attempt tries every due recipient concurrently (bounded per domain) and
// records the outcome durably.
func (q *Queue) attempt(ctx context.Context, it *item, data []byte) {
	it.mu.Lock()
	now := q.cfg.Now()
	var due []int
	for i, r := range it.Recipients {
		if r.Status == Pending && !r.NextAttempt.After(now) {
			due = append(due, i)
		}
	}
	from := it.From
	rcpts := append([]Recipient(nil), it.Recipients...)
	it.mu.Unlock()
	if len(due) == 0 {
		return
	}
	results := make(chan result, len(due))
	for _, i := range due {
		go func() {
			sem := q.domainSem(domainOf(rcpts[i].Address))
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results <- result{idx: i, err: ctx.Err()}
				return
			}
			defer func() { <-sem }()
			actx, cancel := context.WithTimeout(ctx, q.cfg.AttemptTimeout)
			defer cancel()
			err, perm := q.cfg.Courier.Deliver(actx, from, rcpts[i].Address, data)
			results <- result{idx: i, err: err, permanent: perm}
		}()
	}
	got := make([]result, 0, len(due))
	for range due {
		got = append(got, <-results)
	}
	if ctx.Err() != nil {
		// Shutting down: an interrupted attempt is not counted; a delivery
		// that succeeded meanwhile may be repeated after restart.
		var done []result
		for _, r := range got {
			if r.err == nil {
				done = append(done, r)
			}
		}
		got = done
	}

	it.mu.Lock()
	defer it.mu.Unlock()
	now = q.cfg.Now()
	for _, res := range got {
		r := &it.Recipients[res.idx]
		r.Attempts++
		r.LastAttempt = now
		log := q.log.With("queue_id", it.ID, "from", it.From, "to", r.Address, "attempts", r.Attempts)
		switch {
		case res.err == nil:
			r.Status, r.LastError = Delivered, ""
			q.delivered.Add(1)
			log.Info("delivered")
		case res.permanent:
			r.Status, r.LastError = Failed, oneLine(res.err.Error())
			q.bounced.Add(1)
			log.Warn("bounced", "err", res.err)
		case !now.Before(it.Created.Add(q.cfg.Lifetime)):
			r.Status, r.LastError, r.Expired = Failed, oneLine(res.err.Error()), true
			q.bounced.Add(1)
			log.Warn("bounced", "err", res.err, "reason", "lifetime expired")
		default:
			r.LastError = oneLine(res.err.Error())
			r.NextAttempt = now.Add(q.backoff(r.Attempts))
			if deadline := it.Created.Add(q.cfg.Lifetime); r.NextAttempt.After(deadline) {
				r.NextAttempt = deadline
			}
			q.deferred.Add(1)
			log.Info("deferred", "err", res.err, "next_attempt", r.NextAttempt)
		}
	}
	// When every recipient is delivered, work removes the item right away:
	// recording that first would cost two fsyncs for nothing (a crash in
	// between delivers again, which is allowed; losing a message is not).
	allDelivered := true
	for _, r := range it.Recipients {
		allDelivered = allDelivered && r.Status == Delivered
	}
	if allDelivered {
		return
	}
	if err := q.writeEnv(&it.Item, true); err != nil {
		q.log.Error("queue: cannot record delivery state", "queue_id", it.ID, "err", err)
	}
}

// backoff is MinRetry·2^(attempts-1), capped at MaxRetry, ±20% jitter.
func (q *Queue) backoff(attempts int) time.Duration {
	d := q.cfg.MinRetry
	for i := 1; i < attempts && d < q.cfg.MaxRetry; i++ {
		d *= 2
	}
	d = min(d, q.cfg.MaxRetry)
	return time.Duration(float64(d) * (0.8 + 0.4*mrand.Float64()))
}

// notify queues a DSN for recipients that failed since the last one, then
// records that they were notified (a crash in between sends it twice).
func (q *Queue) notify(ctx context.Context, it *item, data []byte) {
	it.mu.Lock()
	var failed []Recipient
	for i := range it.Recipients {
		if r := &it.Recipients[i]; r.Status == Failed && !r.Notified {
			failed = append(failed, *r)
		}
	}
	snapshot := it.Item
	it.mu.Unlock()
	if len(failed) == 0 {
		return
	}
	if snapshot.From != "" {
		msg := buildDSN(q.cfg.Hostname, &snapshot, failed, data, q.cfg.Now())
		id, err := q.Put(ctx, Envelope{To: []string{snapshot.From}}, msg)
		if err != nil {
			q.log.Error("queue: cannot queue DSN; will retry", "queue_id", it.ID, "err", err)
			return
		}
		q.log.Info("dsn queued", "queue_id", it.ID, "dsn_id", id, "to", snapshot.From)
	}
	it.mu.Lock()
	for i := range it.Recipients {
		if it.Recipients[i].Status == Failed {
			it.Recipients[i].Notified = true
		}
	}
	err := q.writeEnv(&it.Item, true)
	it.mu.Unlock()
	if err != nil {
		q.log.Error("queue: cannot record DSN", "queue_id", it.ID, "err", err)
	}
}

func (q *Queue) remove(it *item) {
	// Envelope first: data left alone is an orphan that Open removes.
	if err := os.Remove(filepath.Join(q.cfg.Dir, it.ID+envExt)); err != nil {
		q.log.Error("queue: cannot remove item", "queue_id", it.ID, "err", err)
	}
	os.Remove(filepath.Join(q.cfg.Dir, it.ID+dataExt))
	q.mu.Lock()
	delete(q.items, it.ID)
	q.mu.Unlock()
	q.log.Info("removed", "queue_id", it.ID)
}

func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == '\t' {
			return ' '
		}
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
	if len(s) > 900 {
		s = s[:900]
	}
	return s
}
