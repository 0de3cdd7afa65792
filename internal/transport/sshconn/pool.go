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
// tasks. Connections are dialed on first use; a connection that dropped
// is dialed again by the next Exec or Upload.
type Pool struct {
	dial DialFunc

	mu     sync.Mutex
	hosts  map[string]*poolHost
	closed bool
}

type poolHost struct {
	// lock is held while dialing; a task waits for it no longer than its
	// context allows (a hung host must not hold tasks past their timeout).
	lock chan struct{}
	conn *Conn
}

// NewPool returns a pool that opens connections with dial.
func NewPool(dial DialFunc) *Pool {
	return &Pool{dial: dial, hosts: map[string]*poolHost{}}
}

// Get returns the connection to host, dialing it if needed. Closing the
// returned Conn does nothing: the pool owns the connection.
func (p *Pool) Get(ctx context.Context, host string) (transport.Conn, error) {
	h, err := p.host(host)
	if err != nil {
		return nil, err
	}
	if _, err := h.get(ctx, p.dial, host); err != nil {
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
func (h *poolHost) get(ctx context.Context, dial DialFunc, host string) (*Conn, error) {
	select {
	case h.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("host %s: wait for the connection another task is opening: %w", host, ctx.Err())
	}
	defer func() { <-h.lock }()
	if h.conn != nil && h.conn.Alive() {
		return h.conn, nil
	}
	if h.conn != nil {
		h.conn.Close()
		h.conn = nil
	}
	c, err := dial(ctx, host)
	if err != nil {
		return nil, err
	}
	h.conn = c
	return c, nil
}

// Close closes every connection of the pool.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	hosts := p.hosts
	p.hosts = map[string]*poolHost{}
	p.mu.Unlock()
	for _, h := range hosts {
		h.lock <- struct{}{}
		if h.conn != nil {
			h.conn.Close()
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
		conn, err := c.h.get(ctx, c.pool.dial, c.host)
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
