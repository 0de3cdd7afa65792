// Package sshconn is the SSH transport: a transport.Conn over one SSH
// connection per host (golang.org/x/crypto/ssh), with host key checking
// against a known_hosts file, key/agent/password authentication, an
// optional bastion hop, commands whose script and environment travel on
// stdin, sudo, and resumable SFTP uploads.
package sshconn

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"
)

// HostKeyCheck says how unknown and changed host keys are handled.
type HostKeyCheck int

const (
	// Strict refuses hosts whose key is not in the known_hosts file.
	Strict HostKeyCheck = iota
	// AcceptNew records the key of a host not yet in the known_hosts file
	// and accepts it; a changed key is still refused.
	AcceptNew
	// Off accepts any key (with a warning through Config.Log).
	Off
)

func (h HostKeyCheck) String() string {
	switch h {
	case Strict:
		return "strict"
	case AcceptNew:
		return "accept-new"
	case Off:
		return "off"
	}
	return "HostKeyCheck(" + strconv.Itoa(int(h)) + ")"
}

// ParseHostKeyCheck reads "strict", "accept-new" or "off".
func ParseHostKeyCheck(s string) (HostKeyCheck, error) {
	switch s {
	case "strict", "":
		return Strict, nil
	case "accept-new":
		return AcceptNew, nil
	case "off":
		return Off, nil
	}
	return Strict, fmt.Errorf("host key check %q: want strict, accept-new or off", s)
}

// UploadSlots is a bound on concurrent uploads, shared by connections.
type UploadSlots chan struct{}

// NewUploadSlots returns a bound of n uploads at once (n < 1: none).
func NewUploadSlots(n int) UploadSlots {
	if n < 1 {
		return nil
	}
	return make(UploadSlots, n)
}

// SmallUpload is the size below which an upload takes no slot of
// Config.Uploads: scripts and configs must not wait behind packages.
const SmallUpload = 1 << 20

// Defaults of Config.
const (
	DefaultPort        = 22
	DefaultDialTimeout = 10 * time.Second
	DefaultKeepAlive   = 15 * time.Second
	// DefaultMaxSessions stays below sshd's default MaxSessions (10): one
	// more session is kept open for SFTP.
	DefaultMaxSessions = 8
)

// Config is how to reach and log in to one host.
type Config struct {
	Address string
	Port    int // default 22
	User    string

	// KeyFiles are private keys to offer. KeyPassphrase returns the
	// passphrase of an encrypted key; nil means encrypted keys fail.
	KeyFiles      []string
	KeyPassphrase func(keyFile string) ([]byte, error)
	// Password enables password (and keyboard-interactive) authentication;
	// it is also the sudo password. nil means no password.
	Password func() (string, error)
	// UseAgent offers the keys of the agent at $SSH_AUTH_SOCK.
	UseAgent bool

	// Bastion is a host to hop through (like ssh -J).
	Bastion *Config
	// Dialer opens the TCP connection when there is no bastion; nil
	// means a net.Dialer.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

	KnownHosts   string
	HostKeyCheck HostKeyCheck

	DialTimeout time.Duration // default 10s; covers TCP connect and SSH handshake
	KeepAlive   time.Duration // default 15s; negative disables keepalives
	MaxSessions int           // default 8: concurrent commands on the connection

	// Become makes uploads go through sudo (the host's `become`).
	// Commands follow their own Command.Become: the engine sets it from the
	// host's default and the step's override.
	Become bool

	// TTY asks the server for a pseudo-terminal for every command, for
	// sudo with `Defaults requiretty`. The terminal is raw (no echo, no
	// line editing, no signals from input bytes, output as written), so
	// stdout stays byte for byte what the command printed; stderr arrives
	// merged into stdout, since a terminal has one output. A caller's
	// stdin is sent ahead with its size (a terminal carries no end of
	// input) and given to the command as a file.
	TTY bool

	// Uploads bounds the uploads that send data at once, across every
	// connection given the same value (see NewUploadSlots); nil means no
	// bound. Uploads of less than SmallUpload bytes and uploads the host
	// already has do not take a slot.
	Uploads UploadSlots

	// Log receives warnings. It may be nil.
	Log func(format string, args ...any)

	// HostName is the host's name in the plan, used in error messages.
	HostName string
}

func (c *Config) withDefaults() Config {
	d := *c
	if d.Port == 0 {
		d.Port = DefaultPort
	}
	if d.DialTimeout <= 0 {
		d.DialTimeout = DefaultDialTimeout
	}
	if d.KeepAlive == 0 {
		d.KeepAlive = DefaultKeepAlive
	}
	if d.MaxSessions <= 0 {
		d.MaxSessions = DefaultMaxSessions
	}
	if d.HostName == "" {
		d.HostName = d.Address
	}
	return d
}

// addr is host:port as dialed.
func (c *Config) addr() string {
	return joinHostPort(c.Address, c.Port)
}

func (c *Config) logf(format string, args ...any) {
	if c.Log != nil {
		c.Log(format, args...)
	}
}
