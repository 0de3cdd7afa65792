package sshconn

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeys checks the server's key of one dial. It remembers the typed
// error it returned, so that Dial reports it whatever the handshake
// wraps it in.
type hostKeys struct {
	cfg    *Config
	failed *HostKeyError
}

// callback returns the host key callback and the host key algorithms to
// ask for: those of the keys known for the host, so that a server with
// several host keys presents the one recorded.
func (h *hostKeys) callback() (ssh.HostKeyCallback, []string, error) {
	cfg := h.cfg
	if cfg.HostKeyCheck == Off {
		cfg.logf("host %s: host key checking is off: the identity of %s is not verified", cfg.HostName, cfg.addr())
		return ssh.InsecureIgnoreHostKey(), nil, nil //nolint:gosec // asked for by the user
	}
	if cfg.KnownHosts == "" {
		return nil, nil, fmt.Errorf("host %s: no known_hosts file given (needed to check host keys)", cfg.HostName)
	}
	known, err := h.load()
	if err != nil {
		return nil, nil, err
	}
	algos := knownAlgorithms(known, cfg)
	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		// Re-read: another connection may have recorded the key meanwhile.
		known, err := h.load()
		if err != nil {
			return err
		}
		err = known(hostname, remote, key)
		var ke *knownhosts.KeyError
		if err == nil || !errors.As(err, &ke) {
			return err
		}
		fail := &HostKeyError{
			Host:        cfg.HostName,
			Addr:        knownhosts.Normalize(cfg.addr()),
			KnownHosts:  cfg.KnownHosts,
			KeyType:     keyTypeName(key.Type()),
			Fingerprint: ssh.FingerprintSHA256(key),
		}
		if len(ke.Want) > 0 {
			fail.Changed = true
			fail.File = ke.Want[0].Filename
			fail.Line = ke.Want[0].Line
			h.failed = fail
			return fail
		}
		if cfg.HostKeyCheck == AcceptNew {
			if err := appendKnownHost(cfg.KnownHosts, cfg.addr(), key); err != nil {
				return fmt.Errorf("host %s: record host key in %s: %w", cfg.HostName, cfg.KnownHosts, err)
			}
			cfg.logf("host %s: recorded new host key %s %s for %s in %s", cfg.HostName, fail.KeyType, fail.Fingerprint, fail.Addr, cfg.KnownHosts)
			return nil
		}
		h.failed = fail
		return fail
	}
	return cb, algos, nil
}

// load reads the known_hosts file; a missing file knows no host.
func (h *hostKeys) load() (ssh.HostKeyCallback, error) {
	cb, err := knownhosts.New(h.cfg.KnownHosts)
	if errors.Is(err, fs.ErrNotExist) {
		return func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }, nil
	}
	if err != nil {
		return nil, fmt.Errorf("host %s: read known hosts: %w", h.cfg.HostName, err)
	}
	return cb, nil
}

// knownAlgorithms asks the known_hosts file which keys it holds for the
// host (by checking a key that matches none) and returns their algorithms.
func knownAlgorithms(known ssh.HostKeyCallback, cfg *Config) []string {
	probe, err := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	if err != nil {
		return nil
	}
	remote := &net.TCPAddr{IP: net.ParseIP(cfg.Address), Port: cfg.Port}
	if remote.IP == nil {
		remote.IP = net.IPv4zero
	}
	var ke *knownhosts.KeyError
	if !errors.As(known(cfg.addr(), remote, probe), &ke) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			algos = append(algos, a)
		}
	}
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512)
			add(ssh.KeyAlgoRSASHA256)
			add(ssh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	return algos
}

// appendKnownHost records key for addr. The line is written with one
// append, so concurrent writers do not interleave.
func appendKnownHost(file, addr string, key ssh.PublicKey) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	line := knownhosts.Line([]string{addr}, key) + "\n"
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		// Make sure the line starts on a line of its own.
		if last, err := lastByte(file); err == nil && last != '\n' {
			line = "\n" + line
		}
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func lastByte(file string) (byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b := make([]byte, 1)
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if _, err := f.ReadAt(b, st.Size()-1); err != nil {
		return 0, err
	}
	return b[0], nil
}

// keyTypeName turns "ssh-ed25519" into "ED25519", as ssh prints it.
func keyTypeName(t string) string {
	switch t {
	case ssh.KeyAlgoED25519:
		return "ED25519"
	case ssh.KeyAlgoRSA:
		return "RSA"
	case ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		return "ECDSA"
	}
	return strings.ToUpper(strings.TrimPrefix(t, "ssh-"))
}
