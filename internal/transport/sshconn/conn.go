package sshconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/sealflow/sealflow/internal/transport"
)

var _ transport.Conn = (*Conn)(nil)

// Conn is one SSH connection to a host. It is safe for concurrent use; at
// most Config.MaxSessions commands run at once, the others wait.
type Conn struct {
	cfg     Config
	nc      net.Conn // the transport under client
	client  *ssh.Client
	bastion *Conn
	sem     chan struct{}
	killSem chan struct{} // one session for stopping cancelled commands

	gone      chan struct{} // closed when the connection has ended
	closeOnce sync.Once
	mu        sync.Mutex
	goneErr   error // why the connection ended
	sftp      *sftp.Client

	resMu  sync.Mutex
	res    *resident // the runner, once started (see resident.go)
	resOff bool      // the host refused a runner: sessions only
}

// DroppedError says the connection to a host is gone. Started is false
// when the command or upload had not begun, so running it on a new
// connection is safe.
type DroppedError struct {
	Host    string
	Started bool
	Err     error
}

func (e *DroppedError) Error() string {
	if e.Started {
		return fmt.Sprintf("host %s: connection lost while the command ran (its outcome is unknown): %v", e.Host, e.Err)
	}
	return fmt.Sprintf("host %s: connection lost: %v", e.Host, e.Err)
}

func (e *DroppedError) Unwrap() error { return e.Err }

// Is makes a drop after the start a transport.ErrOutcomeUnknown.
func (e *DroppedError) Is(target error) bool {
	return e.Started && target == transport.ErrOutcomeUnknown
}

func newConn(cfg Config, nc net.Conn, client *ssh.Client, bastion *Conn) *Conn {
	c := &Conn{
		cfg:     cfg,
		nc:      nc,
		client:  client,
		bastion: bastion,
		sem:     make(chan struct{}, cfg.MaxSessions),
		killSem: make(chan struct{}, 1),
		gone:    make(chan struct{}),
	}
	go func() {
		err := client.Wait()
		c.end(fmt.Errorf("ssh connection to %s closed: %v", cfg.addr(), err))
	}()
	if cfg.KeepAlive > 0 {
		go c.keepalive(cfg.KeepAlive)
	}
	return c
}

// Alive reports whether the connection is still up (as far as known).
func (c *Conn) Alive() bool {
	select {
	case <-c.gone:
		return false
	default:
		return true
	}
}

// Host is the host's name in the plan.
func (c *Conn) Host() string { return c.cfg.HostName }

// end records why the connection ended and releases it.
func (c *Conn) end(why error) {
	c.closeOnce.Do(func() {
		// First, so that anything blocked on the connection returns.
		c.client.Close()
		c.mu.Lock()
		c.goneErr = why
		s := c.sftp
		c.sftp = nil
		c.mu.Unlock()
		if s != nil {
			s.Close()
		}
		if c.bastion != nil {
			c.bastion.Close()
		}
		close(c.gone)
	})
}

func (c *Conn) dropped(started bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &DroppedError{Host: c.cfg.HostName, Started: started, Err: c.goneErr}
}

// Close closes the connection; commands still running fail.
func (c *Conn) Close() error {
	c.quitResident()
	c.end(errors.New("closed"))
	return nil
}

// drop closes the connection's transport at once and leaves the rest of
// Close (the SSH client's goroutines winding down, the bastion) to a
// goroutine: a run that ends does not wait for them.
func (c *Conn) drop() {
	c.nc.Close()
	go c.Close()
}

// keepalive sends keepalive@openssh.com requests; a request without an
// answer within the interval ends the connection, so that the next use
// dials again instead of hanging.
func (c *Conn) keepalive(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.gone:
			return
		case <-t.C:
		}
		answered := make(chan error, 1)
		go func() {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			answered <- err
		}()
		timer := time.NewTimer(interval)
		select {
		case err := <-answered:
			timer.Stop()
			if err != nil {
				c.end(fmt.Errorf("keepalive: %w", err))
				return
			}
		case <-timer.C:
			c.end(fmt.Errorf("no answer to a keepalive within %s", interval))
			return
		case <-c.gone:
			timer.Stop()
			return
		}
	}
}

// session opens a session within the MaxSessions limit. release closes
// it and frees the slot.
func (c *Conn) session(ctx context.Context) (*ssh.Session, func(), error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("host %s: wait for a free ssh session: %w", c.cfg.HostName, ctx.Err())
	case <-c.gone:
		return nil, nil, c.dropped(false)
	}
	return c.openSession(ctx)
}

// openSession opens a session in the slot the caller took.
func (c *Conn) openSession(ctx context.Context) (*ssh.Session, func(), error) {
	type opened struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		s, err := c.client.NewSession()
		// A refusal may be sshd's MaxSessions: an idle runner gives its
		// slot back, or else a session just closed frees its slot when
		// sshd next collects closed channels, after the open that came
		// with the close.
		for _, wait := range []time.Duration{10 * time.Millisecond, 50 * time.Millisecond} {
			if !prohibited(err) {
				break
			}
			if !c.yieldResident() {
				time.Sleep(wait)
			}
			s, err = c.client.NewSession()
		}
		ch <- opened{s, err}
	}()
	select {
	case o := <-ch:
		if o.err != nil {
			<-c.sem
			if !c.Alive() {
				return nil, nil, c.dropped(false)
			}
			return nil, nil, fmt.Errorf("host %s: open ssh session: %w", c.cfg.HostName, o.err)
		}
		var once sync.Once
		return o.s, func() {
			once.Do(func() {
				o.s.Close()
				<-c.sem
			})
		}, nil
	case <-ctx.Done():
		go func() {
			if o := <-ch; o.s != nil {
				o.s.Close()
			}
			<-c.sem
		}()
		return nil, nil, fmt.Errorf("host %s: open ssh session: %w", c.cfg.HostName, ctx.Err())
	}
}

// sftpClient returns the connection's SFTP client, starting it once.
func (c *Conn) sftpClient() (*sftp.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sftp != nil {
		return c.sftp, nil
	}
	if c.goneErr != nil {
		return nil, &DroppedError{Host: c.cfg.HostName, Err: c.goneErr}
	}
	s, err := sftp.NewClient(c.client, sftp.UseConcurrentWrites(true), sftp.MaxConcurrentRequestsPerFile(64))
	if err != nil {
		return nil, fmt.Errorf("host %s: start sftp: %w", c.cfg.HostName, err)
	}
	c.sftp = s
	return s, nil
}
