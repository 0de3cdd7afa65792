package sshconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sealflow/sealflow/internal/transport"
)

func dialErr(t *testing.T, cfg Config) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded, want an error")
	}
	t.Logf("error: %v", err)
	return err
}

func TestHostKeyStrictRefusesUnknownKey(t *testing.T) {
	s := startSSHD(t, "")
	cfg := s.config()
	cfg.KnownHosts = filepath.Join(t.TempDir(), "known_hosts") // missing: knows nobody
	err := dialErr(t, cfg)
	var hke *HostKeyError
	if !errors.As(err, &hke) || hke.Changed {
		t.Fatalf("want an unknown-host-key error, got %v", err)
	}
	fp := ssh.FingerprintSHA256(s.hostKey)
	for _, want := range []string{"node1", fmt.Sprintf("[127.0.0.1]:%d", s.port), "ED25519 " + fp, cfg.KnownHosts, "accept-new"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestHostKeyAcceptNewRecordsThenChangedIsRefused(t *testing.T) {
	s := startSSHD(t, "")
	cfg := s.config()
	cfg.KnownHosts = filepath.Join(t.TempDir(), "sub", "known_hosts")
	cfg.HostKeyCheck = AcceptNew
	var logged []string
	cfg.Log = func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
	s.dial(cfg).Close()
	b, err := os.ReadFile(cfg.KnownHosts)
	if err != nil {
		t.Fatalf("accept-new did not record the key: %v", err)
	}
	if !strings.Contains(string(b), string(ssh.MarshalAuthorizedKey(s.hostKey))[:60]) {
		t.Errorf("known_hosts %q does not hold the server's key", b)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "recorded new host key") {
		t.Errorf("log = %q, want one line about the recorded key", logged)
	}
	// Now strict accepts it.
	cfg.HostKeyCheck = Strict
	s.dial(cfg).Close()

	// The host comes back with another key: refused, even with accept-new.
	s.restart(true)
	cfg.HostKeyCheck = AcceptNew
	err = dialErr(t, cfg)
	var hke *HostKeyError
	if !errors.As(err, &hke) || !hke.Changed {
		t.Fatalf("want a changed-host-key error, got %v", err)
	}
	for _, want := range []string{"does not match", cfg.KnownHosts + " line 1", "man-in-the-middle", "ssh-keygen", ssh.FingerprintSHA256(s.hostKey)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if want := fmt.Sprintf("ssh-keygen -f %s -R '[127.0.0.1]:%d' removes line 1", cfg.KnownHosts, s.port); !strings.Contains(hke.Hint(), want) {
		t.Errorf("hint %q, want %q", hke.Hint(), want)
	}
}

func TestHostKeyOffWarns(t *testing.T) {
	s := startSSHD(t, "")
	cfg := s.config()
	cfg.KnownHosts = ""
	cfg.HostKeyCheck = Off
	var logged []string
	cfg.Log = func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
	c := s.dial(cfg)
	if err := transport.Run(context.Background(), c, transport.Command{Script: "true"}); err != nil {
		t.Fatal(err)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "not verified") {
		t.Errorf("log = %q, want a warning that the host is not verified", logged)
	}
}

func TestAuthFailedListsMethods(t *testing.T) {
	s := startSSHD(t, "")
	cfg := s.config()
	other := filepath.Join(t.TempDir(), "wrong_key")
	writeKey(t, other)
	cfg.KeyFiles = []string{other}
	cfg.Password = func() (string, error) { return "not-the-password", nil }
	err := dialErr(t, cfg)
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("want an *AuthError, got %v", err)
	}
	for _, want := range []string{"node1", "as root", "publickey (wrong_key)", "password"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if h := ae.Hint(); !strings.Contains(h, "refused publickey (wrong_key), password") || !strings.Contains(h, "for user root: set the host's user: or key:") {
		t.Errorf("hint %q does not say what was tried and what to set", h)
	}
	if strings.Contains(err.Error(), "not-the-password") {
		t.Errorf("error %q shows the password", err)
	}
}

func TestDialRefused(t *testing.T) {
	t.Parallel()
	cfg := Config{Address: "127.0.0.1", Port: freePort(t, "127.0.0.1"), User: "root", HostName: "node9", KnownHosts: "/nonexistent"}
	err := dialErr(t, cfg)
	var de *DialError
	if !errors.As(err, &de) || de.Kind != DialRefused {
		t.Fatalf("want a refused *DialError, got %v", err)
	}
	if !strings.Contains(err.Error(), "node9") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error %q should name the host and say the connection was refused", err)
	}
}

// A server that accepts the connection but never speaks: the handshake
// times out.
func TestDialTimeout(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	cfg := Config{
		Address: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, User: "root", HostName: "node9",
		KnownHosts: "/nonexistent", DialTimeout: 300 * time.Millisecond,
	}
	err = dialErr(t, cfg)
	var de *DialError
	if !errors.As(err, &de) || de.Kind != DialTimeout {
		t.Fatalf("want a timeout *DialError, got %v", err)
	}
	if !strings.Contains(err.Error(), "node9") || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("error %q should name the host and say it timed out", err)
	}
}

func TestBastion(t *testing.T) {
	bastion := startSSHD(t, "")
	target := startSSHD(t, "127.0.0.2")
	cfg := target.config()
	b := bastion.config()
	b.HostName = "jump"
	cfg.Bastion = &b
	c := target.dial(cfg)
	var out strings.Builder
	if err := transport.Run(context.Background(), c, transport.Command{Script: "echo $SSH_CONNECTION", Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	// SSH_CONNECTION is "client port server port": the server side is
	// the target, reached by the bastion.
	if f := strings.Fields(out.String()); len(f) != 4 || f[2] != "127.0.0.2" {
		t.Errorf("SSH_CONNECTION = %q, want the target 127.0.0.2 as server", out.String())
	}

	// A bastion that forbids forwarding: the dial fails and says via what.
	closed := startSSHD(t, "", "AllowTcpForwarding no")
	b2 := closed.config()
	cfg.Bastion = &b2
	err := dialErr(t, cfg)
	if !strings.Contains(err.Error(), "via bastion "+closed.hostPort()) {
		t.Errorf("error %q should say it went through the bastion", err)
	}
}
