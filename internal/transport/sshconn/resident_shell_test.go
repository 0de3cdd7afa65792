package sshconn

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The runner under each shell a host's sh may be: commands one after
// another between heartbeats (and the SIGCHLD of every command that ends)
// each come through whole; then, with a command running, the
// heartbeats stop (a cut link: no end of input) and the runner's timer
// ends the runner's process group, the command with it.
func TestResidentShells(t *testing.T) {
	shells := map[string][]string{
		"dash":        {"dash", "-c"},
		"bash as sh":  {"bash", "--posix", "-c"},
		"busybox ash": {"busybox", "sh", "-c"},
	}
	for name, argv := range shells {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := exec.LookPath(argv[0]); err != nil {
				t.Skipf("%s is not installed", argv[0])
			}
			runShellRunner(t, argv)
		})
	}
}

func runShellRunner(t *testing.T, argv []string) {
	cmd := exec.Command(argv[0], append(argv[1:], wrapper)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // as sshd starts a session
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	waited := make(chan struct{})
	defer func() {
		stdin.Close()
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-waited
	}()
	const token = "0123456789abcdef"
	var wmu sync.Mutex
	write := func(s string) {
		wmu.Lock()
		defer wmu.Unlock()
		stdin.Write([]byte(s))
	}
	// Heartbeats at once after the header: the second reaches the
	// runner's timer just as it starts, before its USR1 trap.
	write("0 0 r 0 -\n" + token + "\n\n\n\n\n")
	r := bufio.NewReader(stdout)
	if got := readReady(r); got != -pgid {
		t.Fatalf("ready marker: process group %d, want -%d; stderr: %s", got, pgid, stderr.String())
	}
	out := newDemux([]byte("\x00sealflow-end-" + token + " "))
	go func() {
		out.run(r)
		cmd.Wait() // the runner is reaped, so that its group can be gone
		close(waited)
	}()
	beats := make(chan struct{})
	go func() {
		for {
			select {
			case <-beats:
				return
			case <-time.After(10 * time.Millisecond):
				// Not much faster: a runner slowed down by a busy
				// machine would read a backlog of them, and the timer
				// take them for a live link, for long after they stop.
				write("\n")
			}
		}
	}()
	const n = 300
	for i := range n {
		var got bytes.Buffer
		out.set(&got)
		write(fmt.Sprintf("t\nEND%d\necho 'line %d, with text'\nprintf '%%s\\n' second-%d\nEND%d\n", i, i, i, i))
		select {
		case code := <-out.ends:
			want := fmt.Sprintf("line %d, with text\nsecond-%d\n", i, i)
			if code != 0 || got.String() != want {
				t.Fatalf("command %d: status %d, output %q, want 0 and %q; stderr: %s", i, code, got.String(), want, stderr.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("command %d did not end; stderr: %s", i, stderr.String())
		}
	}
	// The heartbeats stop (a cut link). The runner reads its input in
	// order: once a command sent after the last heartbeat has ended, it
	// has read them all, and the clock starts.
	close(beats)
	out.set(nil)
	write("t\nSYNC\ntrue\nSYNC\n")
	select {
	case <-out.ends:
	case <-time.After(20 * time.Second):
		t.Fatalf("a command after the last heartbeat did not end; stderr: %s", stderr.String())
	}
	write("t\nEND\nexec sleep 61\nEND\n")
	start := time.Now()
	for !errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("30 s after the last heartbeat the runner's process group still lives")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the runner's process group ended %s after the last heartbeat", time.Since(start).Round(100*time.Millisecond))
}
