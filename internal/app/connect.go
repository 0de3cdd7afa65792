package app

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sealflow/sealflow/internal/transport"
	"github.com/sealflow/sealflow/internal/transport/local"
	"github.com/sealflow/sealflow/plans"
)

// ConnectOptions say how to reach remote hosts.
type ConnectOptions struct {
	KnownHosts    string
	HostKeyCheck  string // strict | accept-new | off
	PasswordStdin bool
	Password      string // seed-style --passwd (shows in ps)
	DialTimeout   time.Duration
}

// connector hands out one connection per host, dialed on first use.
type connector struct {
	opts  ConnectOptions
	io    IO
	mu    sync.Mutex
	conns map[string]transport.Conn
}

func newConnector(o ConnectOptions, io IO) (*connector, error) {
	return &connector{opts: o, io: io, conns: map[string]transport.Conn{}}, nil
}

func (c *connector) Connect(ctx context.Context, h *plans.Host) (transport.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if conn, ok := c.conns[h.Name]; ok {
		return conn, nil
	}
	if !h.Local() {
		return nil, fmt.Errorf("host %s (%s): remote hosts are not supported by this build", h.Name, h.Address)
	}
	conn := &local.Conn{}
	c.conns[h.Name] = conn
	return conn, nil
}

func (c *connector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	return nil
}
