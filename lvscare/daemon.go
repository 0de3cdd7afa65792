package lvscare

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/sealflow/sealflow/lvscare/podspec"
)

// Config is what a Daemon runs on.
type Config struct {
	VS       netip.AddrPort
	RS       []netip.AddrPort
	Interval time.Duration
	// Timeout bounds each probe.
	Timeout time.Duration
	Rise    int
	Fall    int
	// Resync is how often the kernel's state is read back in full.
	Resync  time.Duration
	Backend Backend
	Probe   ProbeFunc
	Clock   Clock
	Log     *slog.Logger
}

// Daemon keeps one virtual server true. Run, Once and Round must not be
// called concurrently.
type Daemon struct {
	cfg    Config
	health map[netip.AddrPort]*health

	mu       sync.Mutex
	inflight map[netip.AddrPort]bool // probes that have not returned yet

	kernel   []netip.AddrPort // what the kernel has, when cached
	cached   bool
	lastFull time.Time
}

// health is the state of one real server.
type health struct {
	known bool // a probe has decided, or the kernel had it at start
	up    bool
	ok    int // consecutive successes
	fail  int // consecutive failures
}

// observe records one probe result and reports whether up changed.
func (h *health) observe(success bool, rise, fall int) bool {
	if !h.known {
		h.known, h.up = true, success
		return true
	}
	if success {
		h.fail = 0
		h.ok++
		if !h.up && h.ok >= rise {
			h.up, h.ok = true, 0
			return true
		}
		return false
	}
	h.ok = 0
	h.fail++
	if h.up && h.fail >= fall {
		h.up, h.fail = false, 0
		return true
	}
	return false
}

// NewDaemon checks cfg and returns a Daemon.
func NewDaemon(cfg Config) (*Daemon, error) {
	var errs []error
	if err := podspec.CheckAddr("virtual server", cfg.VS); err != nil {
		errs = append(errs, err)
	}
	if len(cfg.RS) == 0 {
		errs = append(errs, errors.New("no real servers"))
	}
	if err := checkSet(cfg.RS); err != nil {
		errs = append(errs, err)
	}
	if cfg.Interval <= 0 || cfg.Timeout <= 0 || cfg.Resync <= 0 {
		errs = append(errs, errors.New("interval, timeout and resync must be positive"))
	}
	if cfg.Rise < 1 || cfg.Fall < 1 {
		errs = append(errs, errors.New("rise and fall must be 1 or more"))
	}
	if cfg.Backend == nil || cfg.Probe == nil {
		errs = append(errs, errors.New("a backend and a probe are needed"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("lvscare config: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cfg.RS = slices.Clone(cfg.RS)
	d := &Daemon{cfg: cfg, health: map[netip.AddrPort]*health{}, inflight: map[netip.AddrPort]bool{}}
	for _, r := range cfg.RS {
		d.health[r] = &health{}
	}
	return d, nil
}

// Run keeps the virtual server true until ctx ends, then returns nil and
// leaves the kernel's rules in place (traffic keeps flowing while the
// daemon restarts). Real servers the kernel already has start as up.
func (d *Daemon) Run(ctx context.Context) error {
	c := d.cfg
	c.Log.Info("lvscare: caring", "vs", c.VS, "rs", c.RS, "backend", c.Backend.Name(),
		"interval", c.Interval, "rise", c.Rise, "fall", c.Fall, "timeout", c.Timeout)
	if svc, err := c.Backend.Get(ctx, c.VS); err == nil {
		for _, r := range svc.RS {
			if h := d.health[r]; h != nil {
				h.known, h.up = true, true
			}
		}
	} else if !errors.Is(err, ErrNotFound) {
		c.Log.Warn("lvscare: read kernel state", "vs", c.VS, "err", err)
	}
	for {
		start := c.Clock.Now()
		if err := d.Round(ctx); err != nil && ctx.Err() == nil {
			c.Log.Error("lvscare: sync", "vs", c.VS, "err", err)
		}
		if ctx.Err() != nil {
			c.Log.Info("lvscare: stopping; rules stay in place", "vs", c.VS)
			return nil
		}
		if !sleep(ctx, c.Clock, c.Interval-c.Clock.Now().Sub(start)) {
			c.Log.Info("lvscare: stopping; rules stay in place", "vs", c.VS)
			return nil
		}
	}
}

// Once probes every real server once, decides by that probe alone, puts
// the result in the kernel and returns.
func (d *Daemon) Once(ctx context.Context) error {
	return d.Round(ctx) // the first round always ends with a full sync
}

type result struct {
	rs  netip.AddrPort
	err error
}

// Round probes every real server concurrently, each bounded by the
// timeout, and applies each change as soon as its result arrives: a slow
// or black-holed server delays nobody else. A full resync with the kernel
// follows when one is due (every Resync, and after any error). It returns
// the first error met while applying.
func (d *Daemon) Round(ctx context.Context) error {
	c := d.cfg
	results := make(chan result, len(c.RS))
	launched := 0
	var firstErr error
	note := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for _, r := range c.RS {
		d.mu.Lock()
		busy := d.inflight[r]
		d.inflight[r] = true
		d.mu.Unlock()
		if busy {
			// The last probe never returned: count a failure, start no other.
			note(d.observe(ctx, r, errors.New("previous probe still running")))
			continue
		}
		launched++
		pctx, cancel := withTimeout(ctx, c.Clock, c.Timeout)
		done := make(chan error, 1)
		go func() {
			err := c.Probe(pctx, r)
			d.mu.Lock()
			delete(d.inflight, r)
			d.mu.Unlock()
			done <- err
		}()
		go func() {
			var res result
			select {
			case err := <-done:
				res = result{r, err}
			case <-pctx.Done():
				select {
				case err := <-done: // it finished at the deadline
					res = result{r, err}
				default:
					res = result{r, fmt.Errorf("probe %s: no answer within %s", r, c.Timeout)}
				}
			}
			cancel() // stop the timer before the round can move on
			results <- res
		}()
	}
	for range launched {
		select {
		case res := <-results:
			note(d.observe(ctx, res.rs, res.err))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if !d.cached || c.Clock.Now().Sub(d.lastFull) >= c.Resync {
		note(d.sync(ctx, true))
	}
	return firstErr
}

// observe records a probe result, logs a change and applies it.
func (d *Daemon) observe(ctx context.Context, r netip.AddrPort, err error) error {
	h := d.health[r]
	if !h.observe(err == nil, d.cfg.Rise, d.cfg.Fall) {
		if err != nil {
			d.cfg.Log.Debug("lvscare: probe failed", "rs", r, "err", err)
		}
		return nil
	}
	if h.up {
		d.cfg.Log.Info("lvscare: real server up", "vs", d.cfg.VS, "rs", r)
	} else {
		d.cfg.Log.Warn("lvscare: real server down", "vs", d.cfg.VS, "rs", r, "err", err)
	}
	return d.sync(ctx, false)
}

// desired is the sorted list of real servers that are up.
func (d *Daemon) desired() []netip.AddrPort {
	var out []netip.AddrPort
	for _, r := range d.cfg.RS {
		if h := d.health[r]; h.known && h.up {
			out = append(out, r)
		}
	}
	return sortedRS(out)
}

// sync makes the kernel match desired(). full reads the kernel back first;
// otherwise the last known kernel state is trusted. An error drops the
// cache, so the next round reads the kernel in full.
func (d *Daemon) sync(ctx context.Context, full bool) error {
	c := d.cfg
	b := c.Backend
	if full || !d.cached {
		d.cached = false
		svc, err := b.Get(ctx, c.VS)
		switch {
		case errors.Is(err, ErrNotFound):
			if err := b.Add(ctx, c.VS, c.RS[0].Addr()); err != nil {
				return fmt.Errorf("add virtual server %s (%s): %w", c.VS, b.Name(), err)
			}
			c.Log.Info("lvscare: virtual server added", "vs", c.VS, "backend", b.Name())
			d.kernel = nil
		case err != nil:
			return fmt.Errorf("read virtual server %s (%s): %w", c.VS, b.Name(), err)
		case !svc.Intact:
			c.Log.Warn("lvscare: virtual server incomplete in the kernel; re-creating it", "vs", c.VS, "backend", b.Name())
			if err := b.Delete(ctx, c.VS); err != nil && !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("delete incomplete virtual server %s (%s): %w", c.VS, b.Name(), err)
			}
			if err := b.Add(ctx, c.VS, c.RS[0].Addr()); err != nil {
				return fmt.Errorf("re-add virtual server %s (%s): %w", c.VS, b.Name(), err)
			}
			d.kernel = nil
		default:
			d.kernel = svc.RS
		}
		d.cached = true
		d.lastFull = c.Clock.Now()
	}
	want := d.desired()
	if slices.Equal(d.kernel, want) {
		return nil
	}
	if err := b.Set(ctx, c.VS, want); err != nil {
		d.cached = false
		return fmt.Errorf("set real servers of %s (%s): %w", c.VS, b.Name(), err)
	}
	c.Log.Info("lvscare: real servers set", "vs", c.VS, "rs", want)
	d.kernel = want
	return nil
}
