package sshconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"

	"github.com/sealflow/sealflow/internal/transport"
)

// DialFunc opens the connection to the named host.
type DialFunc func(ctx context.Context, host string) (*Conn, error)

// Pool keeps one connection per host, shared by all of that host's
// tasks. Connections are dialed on first use or ahead of it (Warm); a
// connection that dropped is dialed again by the next Exec or Upload.
type Pool struct {
	dial DialFunc
	// warmCtx ends the dials of Warm when the pool closes.
	warmCtx  context.Context
	stopWarm context.CancelFunc

	// waits, when set (tests), is called when a Get is about to wait for
	// a host's lock.
	waits func(host string)

	mu     sync.Mutex
	hosts  map[string]*poolHost
	closed bool
}

type poolHost struct {
	// lock is held while dialing; a task waits for it no longer than its
	// context allows (a hung host must not hold tasks past their timeout).
	lock chan struct{}
	conn *Conn
	// warm is the dial Warm started, while it runs (under the pool's mu).
	warm *warmDial
}

// warmDial is a dial started ahead of the first use.
type warmDial struct {
	err error // set before the host's lock is released
}

// NewPool returns a pool that opens connections with dial.
func NewPool(dial DialFunc) *Pool {
	ctx, cancel := context.WithCancel(context.Background())
	return &Pool{dial: dial, hosts: map[string]*poolHost{}, warmCtx: ctx, stopWarm: cancel}
}

// Warm starts dialing host in the background, so that its first task
// finds the connection open instead of waiting for a handshake. A task
// that asks for the connection while that dial runs waits for it, and
// gets its error if it fails; one that comes after a failed dial dials
// again (the host may have come up since). Close stops the dial.
func (p *Pool) Warm(ctx context.Context, host string) {
	h, err := p.host(host)
	if err != nil {
		return
	}
	// The lock is taken before Warm returns, so a Get that follows finds
	// the dial under way and waits for it; a host that holds a
	// connection, or whose task is dialing, needs no warming.
	select {
	case h.lock <- struct{}{}:
	default:
		return
	}
	if h.conn != nil {
		<-h.lock
		return
	}
	w := &warmDial{}
	p.mu.Lock()
	h.warm = w
	p.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(p.warmCtx, cancel)
	go func() {
		defer cancel()
		defer stop()
		c, err := p.dial(ctx, host)
		if err != nil {
			w.err = err
		} else {
			h.conn = c
		}
		p.mu.Lock()
		h.warm = nil
		p.mu.Unlock()
		<-h.lock
	}()
}

// Get returns the connection to host, dialing it if needed. Closing the
// returned Conn does nothing: the pool owns the connection.
func (p *Pool) Get(ctx context.Context, host string) (transport.Conn, error) {
	h, err := p.host(host)
	if err != nil {
		return nil, err
	}
	if _, err := h.get(ctx, p, host); err != nil {
		return nil, err
	}
	return &pooled{pool: p, host: host, h: h}, nil
}

func (p *Pool) host(name string) (*poolHost, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("host %s: connection pool is closed", name)
	}
	h := p.hosts[name]
	if h == nil {
		h = &poolHost{lock: make(chan struct{}, 1)}
		p.hosts[name] = h
	}
	return h, nil
}

// get returns the live connection, dialing when there is none.
func (h *poolHost) get(ctx context.Context, p *Pool, host string) (*Conn, error) {
	p.mu.Lock()
	warm := h.warm
	p.mu.Unlock()
	if p.waits != nil {
		p.waits(host)
	}
	select {
	case h.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("host %s: wait for the connection another task is opening: %w", host, ctx.Err())
	}
	defer func() { <-h.lock }()
	if h.conn != nil && h.conn.Alive() {
		return h.conn, nil
	}
	if warm != nil && warm.err != nil {
		// The dial this task waited for failed: dialing again at once
		// would only double the wait for a host that is down.
		return nil, warm.err
	}
	if h.conn != nil {
		h.conn.Close()
		h.conn = nil
	}
	c, err := p.dial(ctx, host)
	if err != nil {
		return nil, err
	}
	h.conn = c
	return c, nil
}

// Close closes every connection of the pool and stops the dials of Warm.
// It closes their transports and returns: the SSH clients wind down in
// the background (a run's end does not wait for them, host after host).
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	hosts := p.hosts
	p.hosts = map[string]*poolHost{}
	p.mu.Unlock()
	p.stopWarm()
	for _, h := range hosts {
		h.lock <- struct{}{}
		if h.conn != nil {
			h.conn.drop()
			h.conn = nil
		}
		<-h.lock
	}
	return nil
}

// pooled is a host's connection as handed out by the pool.
type pooled struct {
	pool *Pool
	host string
	h    *poolHost
}

// do runs f on the host's live connection. When the connection turns
// out to be gone before f started anything, it dials again and retries
// once.
func (c *pooled) do(ctx context.Context, f func(*Conn) error) error {
	return c.doRetry(ctx, func() bool { return true }, f)
}

// doRetry is do, retrying only when again says it can.
func (c *pooled) doRetry(ctx context.Context, again func() bool, f func(*Conn) error) error {
	for attempt := 0; ; attempt++ {
		if _, err := c.pool.host(c.host); err != nil {
			return err
		}
		conn, err := c.h.get(ctx, c.pool, c.host)
		if err != nil {
			return err
		}
		err = f(conn)
		var d *DroppedError
		if attempt == 0 && errors.As(err, &d) && !d.Started && again() {
			continue
		}
		return err
	}
}

func (c *pooled) Exec(ctx context.Context, cmd transport.Command) (transport.Result, error) {
	var res transport.Result
	err := c.do(ctx, func(conn *Conn) error {
		var err error
		res, err = conn.Exec(ctx, cmd)
		return err
	})
	return res, err
}

// Upload retries on a new connection only when it can rewind src.
func (c *pooled) Upload(ctx context.Context, src io.Reader, dst string, mode fs.FileMode, sum string) error {
	again := func() bool { return false }
	if s, ok := src.(io.Seeker); ok {
		if start, err := s.Seek(0, io.SeekCurrent); err == nil {
			again = func() bool {
				_, err := s.Seek(start, io.SeekStart)
				return err == nil
			}
		}
	}
	return c.doRetry(ctx, again, func(conn *Conn) error {
		return conn.Upload(ctx, src, dst, mode, sum)
	})
}

// Close does nothing: the pool closes its connections.
func (c *pooled) Close() error { return nil }
