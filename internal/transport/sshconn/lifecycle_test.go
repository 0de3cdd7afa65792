package sshconn

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/transport"
)

// Cancelling an Exec kills the remote command and everything it started.
func TestExecCancelKillsRemoteProcess(t *testing.T) {
	s := startSSHD(t, "")
	c := s.dial(s.config())
	pidFile := t.TempDir() + "/pid"
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, transport.Command{
			Script: `sleep 300 & echo $! >"$PIDFILE.tmp"; mv "$PIDFILE.tmp" "$PIDFILE"; wait`,
			Env:    map[string]string{"PIDFILE": pidFile},
		})
		errc <- err
	}()
	var pid int
	waitFor(t, "the remote sleep to start", func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Exec returned %v, want context.Canceled", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Exec did not return after cancel")
	}
	waitFor(t, "the remote sleep to be gone", func() bool {
		return syscall.Kill(pid, 0) == syscall.ESRCH || isZombie(pid)
	})
	// The connection is still usable.
	if err := transport.Run(context.Background(), c, transport.Command{Script: "true"}); err != nil {
		t.Errorf("Exec after a cancel: %v", err)
	}
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	rest := string(b[bytes.LastIndexByte(b, ')')+1:])
	f := strings.Fields(rest)
	return len(f) > 0 && f[0] == "Z"
}

// Script and environment travel on stdin: no process of the host shows
// them on its command line while the command runs.
func TestSecretsNotOnCommandLine(t *testing.T) {
	s := startSSHD(t, "")
	c := s.dial(s.config())
	secret := "hunter2-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	scriptMark := "script-mark-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	started := t.TempDir() + "/started"
	errc := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		errc <- transport.Run(ctx, c, transport.Command{
			Script: "# " + scriptMark + "\ntouch \"$STARTED\"\nsleep 30",
			Env:    map[string]string{"TOKEN": secret, "STARTED": started},
		})
	}()
	waitFor(t, "the command to start", func() bool { _, err := os.Stat(started); return err == nil })
	// The sleep is what proves the check sees the command's processes.
	var lines []string
	waitFor(t, "the command's sleep among the processes", func() bool {
		lines = cmdlines()
		for _, line := range lines {
			if strings.HasPrefix(line, "sleep 30") {
				return true
			}
		}
		return false
	})
	for _, line := range lines {
		if strings.Contains(line, secret) || strings.Contains(line, scriptMark) {
			t.Errorf("a process shows the secret or the script on its command line: %q", line)
		}
	}
	cancel()
	<-errc
}

// A connection whose server side dies is dialed again by the pool on
// the next Exec.
func TestPoolRedialsDroppedConnection(t *testing.T) {
	s := startSSHD(t, "")
	cfg := s.config()
	dials := 0
	var current *Conn
	pool := NewPool(func(ctx context.Context, host string) (*Conn, error) {
		dials++
		c, err := Dial(ctx, cfg)
		current = c
		return c, err
	})
	defer pool.Close()
	ctx := context.Background()
	c, err := pool.Get(ctx, "node1")
	if err != nil {
		t.Fatal(err)
	}
	if err := transport.Run(ctx, c, transport.Command{Script: "true"}); err != nil {
		t.Fatal(err)
	}
	first := current
	// Kill the sshd processes serving our connection.
	for _, pid := range childPIDs(s.cmd.Process.Pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	waitFor(t, "the client to see the connection drop", func() bool { return !first.Alive() })
	var out strings.Builder
	if err := transport.Run(ctx, c, transport.Command{Script: "echo again", Stdout: &out}); err != nil {
		t.Fatalf("Exec after the drop: %v", err)
	}
	if out.String() != "again\n" || dials != 2 {
		t.Errorf("after the drop: output %q with %d dials, want \"again\\n\" with 2", out.String(), dials)
	}

	// sshd restarted (all connections gone): same.
	s.restart(false)
	waitFor(t, "the client to see the restart", func() bool { return !current.Alive() })
	if err := transport.Run(ctx, c, transport.Command{Script: "true"}); err != nil {
		t.Fatalf("Exec after an sshd restart: %v", err)
	}
	if dials != 3 {
		t.Errorf("%d dials, want 3", dials)
	}
}

// A server that stops answering is noticed by the keepalives: the
// connection ends and the next use re-dials.
func TestKeepaliveEndsHungConnection(t *testing.T) {
	s := startSSHD(t, "")
	cfg := s.config()
	cfg.KeepAlive = 200 * time.Millisecond
	c := s.dial(cfg)
	if err := transport.Run(context.Background(), c, transport.Command{Script: "true"}); err != nil {
		t.Fatal(err)
	}
	kids := childPIDs(s.cmd.Process.Pid)
	for _, pid := range kids {
		syscall.Kill(pid, syscall.SIGSTOP)
	}
	defer func() {
		for _, pid := range kids {
			syscall.Kill(pid, syscall.SIGKILL)
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	waitFor(t, "the keepalive to end the hung connection", func() bool { return !c.Alive() })
	_, err := c.Exec(context.Background(), transport.Command{Script: "true"})
	var d *DroppedError
	if !errors.As(err, &d) || d.Started {
		t.Errorf("Exec on the ended connection: %v, want a *DroppedError before start", err)
	}
	if !strings.Contains(err.Error(), "keepalive") {
		t.Errorf("error %q should say the keepalive failed", err)
	}
}

// A warmed connection is the one the first Get hands out: the task does
// not dial again, and commands run on it. Close ends it without waiting.
func TestPoolWarmedConnection(t *testing.T) {
	s := startSSHD(t, "")
	cfg := s.config()
	var mu sync.Mutex
	dials := 0
	var dialed *Conn
	started := make(chan struct{}, 4)
	pool := NewPool(func(ctx context.Context, host string) (*Conn, error) {
		mu.Lock()
		dials++
		mu.Unlock()
		started <- struct{}{}
		c, err := Dial(ctx, cfg)
		mu.Lock()
		dialed = c
		mu.Unlock()
		return c, err
	})
	ctx := context.Background()
	pool.Warm(ctx, "node1")
	select {
	case <-started: // Warm dials by itself, before any Get
	case <-time.After(5 * time.Second):
		t.Fatal("Warm did not dial")
	}
	pool.Warm(ctx, "node1") // under way: nothing more
	c, err := pool.Get(ctx, "node1")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := transport.Run(ctx, c, transport.Command{Script: "echo warm", Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	pool.Warm(ctx, "node1") // connected: nothing more
	mu.Lock()
	n, first := dials, dialed
	mu.Unlock()
	if out.String() != "warm\n" || n != 1 {
		t.Errorf("output %q with %d dials, want \"warm\\n\" with 1", out.String(), n)
	}
	pool.Close()
	waitFor(t, "the closed pool's connection to end", func() bool { return !first.Alive() })
}
