package sshconn

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/sealflow/sealflow/internal/testutil"
)

// testSSHD is a real OpenSSH server on 127.0.0.1 with its own config,
// host key and authorized_keys in a temp directory; root logs in.
type testSSHD struct {
	t       testing.TB
	dir     string
	addr    string // listen address
	port    int
	hostKey ssh.PublicKey
	userKey string // private key file authorized to log in
	extra   []string
	prefix  []string // a program sshd runs under (e.g. strace and its arguments)
	cmd     *exec.Cmd
	log     *syncBuffer
}

func needSSHD(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs a real sshd that root logs in to")
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Skip("needs OpenSSH's sshd (Debian package openssh-server)")
	}
}

// startSSHD starts sshd listening on addr (127.0.0.1 when empty) with
// extra config lines. Its sessions have SHLVL=1, so that root's login
// shell, if bash, does not read this machine's ~/.bashrc (bash reads it
// under sshd only as a top-level shell): what that file prints, or races
// on between logins at once (pyenv's rehash here), is not the tests'.
// Lab hosts (a fresh /root) are where the rc files of a host are tried.
func startSSHD(t testing.TB, addr string, extra ...string) *testSSHD {
	t.Helper()
	return startSSHDUnder(t, nil, addr, extra...)
}

// startSSHDUnder is startSSHD with sshd run by the program prefix.
func startSSHDUnder(t testing.TB, prefix []string, addr string, extra ...string) *testSSHD {
	t.Helper()
	needSSHD(t)
	if addr == "" {
		addr = "127.0.0.1"
	}
	s := &testSSHD{t: t, dir: t.TempDir(), addr: addr, port: freePort(t, addr), extra: extra, prefix: prefix}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	s.userKey = filepath.Join(s.dir, "id_ed25519")
	pub := writeKey(t, s.userKey)
	if err := os.WriteFile(filepath.Join(s.dir, "authorized_keys"), ssh.MarshalAuthorizedKey(pub), 0o600); err != nil {
		t.Fatal(err)
	}
	s.newHostKey()
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *testSSHD) newHostKey() {
	s.hostKey = writeKey(s.t, filepath.Join(s.dir, "host_key"))
}

func (s *testSSHD) start() {
	t := s.t
	t.Helper()
	conf := fmt.Sprintf(`Port %d
ListenAddress %s
HostKey %s
PidFile none
AuthorizedKeysFile %s
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 100
Subsystem sftp internal-sftp
SetEnv SHLVL=1
`, s.port, s.addr, filepath.Join(s.dir, "host_key"), filepath.Join(s.dir, "authorized_keys")) + strings.Join(s.extra, "\n") + "\n"
	cf := filepath.Join(s.dir, "sshd_config")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s.log = &syncBuffer{}
	args := append(append([]string(nil), s.prefix...), "/usr/sbin/sshd", "-D", "-e", "-f", cf)
	s.cmd = exec.Command(args[0], args[1:]...)
	s.cmd.Stderr = s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.hostPort(), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen on %s: %v\n%s", s.hostPort(), err, s.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *testSSHD) stop() {
	if s.cmd == nil {
		return
	}
	// Children first (one per connection), then the listener.
	for _, pid := range childPIDs(s.cmd.Process.Pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// restart stops sshd and starts it again on the same port, with a new
// host key when newKey.
func (s *testSSHD) restart(newKey bool) {
	s.stop()
	if newKey {
		s.newHostKey()
	}
	s.start()
}

func (s *testSSHD) hostPort() string { return joinHostPort(s.addr, s.port) }

// config is a Config that logs in as root with the authorized key and
// trusts the server's host key.
func (s *testSSHD) config() Config {
	kh := filepath.Join(s.t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{s.hostPort()}, s.hostKey) + "\n"
	if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return Config{
		Address:    s.addr,
		Port:       s.port,
		User:       "root",
		KeyFiles:   []string{s.userKey},
		KnownHosts: kh,
		HostName:   "node1",
	}
}

func (s *testSSHD) dial(cfg Config) *Conn {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		s.t.Fatalf("dial: %v\nsshd log:\n%s", err, s.log)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

func writeKey(t testing.TB, file string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func freePort(t testing.TB, addr string) int {
	t.Helper()
	l, err := net.Listen("tcp", joinHostPort(addr, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		rest := string(b[bytes.LastIndexByte(b, ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// cmdlines returns the command lines of every process on the machine.
func cmdlines() []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		out = append(out, strings.ReplaceAll(string(b), "\x00", " "))
	}
	return out
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or a generous limit passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, what, 30*time.Second, 20*time.Millisecond, testutil.True(cond))
}
