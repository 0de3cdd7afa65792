package sshconn

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// DialErrorKind says why a connection could not be opened.
type DialErrorKind int

const (
	// DialFailed is any other network error (no route, DNS ...).
	DialFailed DialErrorKind = iota
	// DialRefused: nothing listens on the port.
	DialRefused
	// DialTimeout: no TCP connection or SSH handshake within the dial timeout.
	DialTimeout
)

// DialError is a failure to reach a host's SSH server.
type DialError struct {
	Host string // the host's name in the plan
	Addr string // host:port dialed
	Via  string // the bastion's address, if any
	Kind DialErrorKind
	Err  error
}

func (e *DialError) Error() string {
	via := ""
	if e.Via != "" {
		via = " via bastion " + e.Via
	}
	switch e.Kind {
	case DialRefused:
		return fmt.Sprintf("host %s: connect to %s%s: connection refused (is sshd running, and is the port right?)", e.Host, e.Addr, via)
	case DialTimeout:
		return fmt.Sprintf("host %s: connect to %s%s: timed out (no answer from an SSH server; check the address, the port and firewalls): %v", e.Host, e.Addr, via, e.Err)
	}
	return fmt.Sprintf("host %s: connect to %s%s: %v", e.Host, e.Addr, via, e.Err)
}

func (e *DialError) Unwrap() error { return e.Err }

// Hint says where to look.
func (e *DialError) Hint() string {
	switch e.Kind {
	case DialRefused:
		return fmt.Sprintf("nothing listens at %s: start sshd on the host, or set the host's port: in the inventory", e.Addr)
	case DialTimeout:
		return fmt.Sprintf("no answer from %s: check the host's address: and port: in the inventory, and firewalls between (a bastion: goes through another host)", e.Addr)
	}
	return fmt.Sprintf("check the host's address: %s in the inventory", e.Addr)
}

// AuthError is a failed login: every method offered was rejected.
type AuthError struct {
	Host    string
	Addr    string
	User    string
	Methods []string // e.g. "publickey (id_ed25519)", "password"
	Err     error
}

func (e *AuthError) Error() string {
	tried := "none (configure a key, the agent or a password)"
	if len(e.Methods) > 0 {
		tried = strings.Join(e.Methods, ", ")
	}
	return fmt.Sprintf("host %s: authentication as %s at %s failed; tried %s", e.Host, e.User, e.Addr, tried)
}

func (e *AuthError) Unwrap() error { return e.Err }

// Hint says what to change: the user, the key, or a password.
func (e *AuthError) Hint() string {
	tried := "no key and no password"
	if len(e.Methods) > 0 {
		tried = strings.Join(e.Methods, ", ")
	}
	return fmt.Sprintf("%s refused %s for user %s: set the host's user: or key: (--pk for the seed commands), load the key into ssh-agent, or give --password-stdin", e.Addr, tried, e.User)
}

// HostKeyError is a host key that is not trusted: unknown (not in the
// known_hosts file) or changed (another key is recorded for the host).
type HostKeyError struct {
	Host        string
	Addr        string // host:port, as written in known_hosts ([addr]:port)
	KnownHosts  string
	KeyType     string // e.g. ED25519
	Fingerprint string // SHA256:...
	// Changed is set when the known_hosts file holds another key for the
	// host; File and Line locate it.
	Changed bool
	File    string
	Line    int
}

func (e *HostKeyError) Error() string {
	if e.Changed {
		return fmt.Sprintf("host key for %s %s (%s %s) does not match the key in %s line %d — possible man-in-the-middle attack; if the host was reinstalled remove the old key with ssh-keygen -f %s -R '%s'",
			e.Host, e.Addr, e.KeyType, e.Fingerprint, e.File, e.Line, e.File, e.Addr)
	}
	return fmt.Sprintf("host key for %s %s is not in %s (%s %s); verify it and add it, or use --host-key-check accept-new",
		e.Host, e.Addr, e.KnownHosts, e.KeyType, e.Fingerprint)
}

// Hint says which line to remove, or how to trust a new host.
func (e *HostKeyError) Hint() string {
	if e.Changed {
		return fmt.Sprintf("only if the host was reinstalled: ssh-keygen -f %s -R '%s' removes line %d, then run again", e.File, e.Addr, e.Line)
	}
	return fmt.Sprintf("compare %s %s with the host's own key (ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub on it), then add it to %s or run once with --host-key-check accept-new",
		e.KeyType, e.Fingerprint, strings.ToLower(e.KeyType), e.KnownHosts)
}

// classifyNetErr turns a network error into a DialError.
func classifyNetErr(cfg *Config, via string, err error) error {
	kind := DialFailed
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		kind = DialRefused
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		kind = DialTimeout
	case strings.Contains(err.Error(), "connection refused"):
		// Refusals reported by a bastion come back as text.
		kind = DialRefused
	}
	return &DialError{Host: cfg.HostName, Addr: cfg.addr(), Via: via, Kind: kind, Err: err}
}

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
