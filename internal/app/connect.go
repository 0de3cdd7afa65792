package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/sealflow/sealflow/internal/transport"
	"github.com/sealflow/sealflow/internal/transport/local"
	"github.com/sealflow/sealflow/internal/transport/sshconn"
	"github.com/sealflow/sealflow/plans"
)

// ConnectOptions say how to reach remote hosts.
type ConnectOptions struct {
	KnownHosts    string
	HostKeyCheck  string // strict | accept-new | off
	PasswordStdin bool
	Password      string // seed-style --passwd (shows in ps)
	DialTimeout   time.Duration
	// Uploads bounds the uploads sending data at once, over all hosts
	// (0: no bound).
	Uploads int
}

// connector hands out one connection per host: local hosts get the local
// transport, others a pooled SSH connection dialed on first use.
type connector struct {
	opts  ConnectOptions
	io    IO
	check sshconn.HostKeyCheck
	pool  *sshconn.Pool
	slots sshconn.UploadSlots // shared by every host's connection

	mu    sync.Mutex
	hosts map[string]*plans.Host
	local *local.Conn
	// stdinPassword is read once, on first need.
	stdinOnce     sync.Once
	stdinPassword string
	stdinErr      error
	warned        map[string]bool
}

func newConnector(o ConnectOptions, io IO) (*connector, error) {
	check := sshconn.Strict
	if o.HostKeyCheck != "" {
		var err error
		if check, err = sshconn.ParseHostKeyCheck(o.HostKeyCheck); err != nil {
			return nil, Invalid(err)
		}
	}
	if o.KnownHosts == "" {
		if home, err := os.UserHomeDir(); err == nil {
			o.KnownHosts = filepath.Join(home, ".ssh", "known_hosts")
		}
	}
	c := &connector{opts: o, io: io, check: check, slots: sshconn.NewUploadSlots(o.Uploads), hosts: map[string]*plans.Host{}, local: &local.Conn{}, warned: map[string]bool{}}
	c.pool = sshconn.NewPool(c.dial)
	return c, nil
}

func (c *connector) Connect(ctx context.Context, h *plans.Host) (transport.Conn, error) {
	if h.Local() {
		return c.local, nil
	}
	c.mu.Lock()
	c.hosts[h.Name] = h
	c.mu.Unlock()
	return c.pool.Get(ctx, h.Name)
}

// Warm starts connecting to the remote ones of hosts, in the background
// (see sshconn.Pool.Warm): a run connects while it sets up its state
// directory and journal, not after.
func (c *connector) Warm(ctx context.Context, hosts []*plans.Host) {
	for _, h := range hosts {
		if h.Local() {
			continue
		}
		c.mu.Lock()
		c.hosts[h.Name] = h
		c.mu.Unlock()
		c.pool.Warm(ctx, h.Name)
	}
}

// setStderr sends warnings to w from now on (dials may be under way).
func (c *connector) setStderr(w io.Writer) {
	c.mu.Lock()
	c.io.Stderr = w
	c.mu.Unlock()
}

func (c *connector) Close() error { return c.pool.Close() }

func (c *connector) dial(ctx context.Context, name string) (*sshconn.Conn, error) {
	c.mu.Lock()
	h := c.hosts[name]
	c.mu.Unlock()
	if h == nil {
		return nil, fmt.Errorf("host %s: unknown", name)
	}
	cfg := c.config(h.Name, h.Address, h.Port, h.User, h.Key)
	cfg.Become = h.Become // uploads; commands follow each task's become
	cfg.TTY = h.TTY
	cfg.Uploads = c.slots
	if pw := c.passwordFor(h); pw != nil {
		cfg.Password = pw
	}
	if h.KeyPassphraseEnv != "" {
		env := h.KeyPassphraseEnv
		cfg.KeyPassphrase = func(string) ([]byte, error) {
			v, ok := os.LookupEnv(env)
			if !ok {
				return nil, fmt.Errorf("key_passphrase_env: $%s is not set", env)
			}
			return []byte(v), nil
		}
	} else {
		cfg.KeyPassphrase = c.promptPassphrase
	}
	if b := h.Bastion; b != nil {
		user := b.User
		if user == "" {
			user = h.User
		}
		bc := c.config(h.Name+" (bastion)", b.Address, b.Port, user, b.Key)
		cfg.Bastion = &bc
	}
	return sshconn.Dial(ctx, cfg)
}

func (c *connector) config(name, address string, port int, user, key string) sshconn.Config {
	cfg := sshconn.Config{
		HostName:     name,
		Address:      address,
		Port:         port,
		User:         user,
		KnownHosts:   c.opts.KnownHosts,
		HostKeyCheck: c.check,
		DialTimeout:  c.opts.DialTimeout,
		UseAgent:     os.Getenv("SSH_AUTH_SOCK") != "",
		Log:          c.warn,
	}
	if key != "" {
		cfg.KeyFiles = []string{expandHome(key)}
	} else {
		cfg.KeyFiles = defaultKeys()
	}
	return cfg
}

// warn prints each distinct warning once per run.
func (c *connector) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.warned[msg] {
		return
	}
	c.warned[msg] = true
	fmt.Fprintln(c.io.Stderr, "warning: "+msg)
}

// passwordFor returns the password source of h: password_env,
// password_file, --password-stdin or --passwd, in that order.
func (c *connector) passwordFor(h *plans.Host) func() (string, error) {
	switch {
	case h.PasswordEnv != "":
		env := h.PasswordEnv
		return func() (string, error) {
			v, ok := os.LookupEnv(env)
			if !ok {
				return "", fmt.Errorf("password_env: $%s is not set", env)
			}
			return v, nil
		}
	case h.PasswordFile != "":
		file := expandHome(h.PasswordFile)
		return func() (string, error) {
			b, err := os.ReadFile(file)
			if err != nil {
				return "", fmt.Errorf("password_file: %w", err)
			}
			return strings.TrimRight(string(b), "\r\n"), nil
		}
	case c.opts.PasswordStdin:
		return func() (string, error) {
			c.stdinOnce.Do(func() {
				line, err := bufio.NewReader(c.io.Stdin).ReadString('\n')
				if err != nil && line == "" {
					c.stdinErr = fmt.Errorf("--password-stdin: nothing on standard input")
					return
				}
				c.stdinPassword = strings.TrimRight(line, "\r\n")
			})
			return c.stdinPassword, c.stdinErr
		}
	case c.opts.Password != "":
		pw := c.opts.Password
		return func() (string, error) { return pw, nil }
	}
	return nil
}

// promptPassphrase asks for a key's passphrase on the terminal.
func (c *connector) promptPassphrase(keyFile string) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("key %s is encrypted and there is no terminal to ask for its passphrase; set key_passphrase_env", keyFile)
	}
	defer tty.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(tty, "passphrase for %s: ", keyFile)
	pw, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	return pw, err
}

func defaultKeys() []string {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil
	}
	var keys []string
	for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		p := filepath.Join(home, ".ssh", n)
		if _, err := os.Stat(p); err == nil {
			keys = append(keys, p)
		}
	}
	return keys
}

func expandHome(p string) string {
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[2:])
		}
	}
	return p
}
