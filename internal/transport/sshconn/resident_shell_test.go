package sshconn

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
	forShells(t, runShellRunner)
}

// forShells runs test under each shell a host's sh may be, in parallel.
func forShells(t *testing.T, test func(t *testing.T, argv []string)) {
	for name, argv := range map[string][]string{
		"dash":        {"dash", "-c"},
		"bash as sh":  {"bash", "--posix", "-c"},
		"busybox ash": {"busybox", "sh", "-c"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := exec.LookPath(argv[0]); err != nil {
				t.Skipf("%s is not installed", argv[0])
			}
			test(t, argv)
		})
	}
}

// shellRunner is the runner under a shell of this machine, started as
// sshd starts a session.
type shellRunner struct {
	write  func(string)
	out    *demux
	pgid   int
	stderr *bytes.Buffer
	stdin  io.Closer
}

// startShellRunner starts the runner under argv, sends its header and
// the heartbeats in first, and waits for its ready marker.
func startShellRunner(t *testing.T, argv []string, first string) *shellRunner {
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
	t.Cleanup(func() {
		stdin.Close()
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-waited
	})
	const token = "0123456789abcdef"
	var wmu sync.Mutex
	write := func(s string) {
		wmu.Lock()
		defer wmu.Unlock()
		stdin.Write([]byte(s))
	}
	write("0 0 r 0 -\n" + token + "\n" + first)
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
	return &shellRunner{write: write, out: out, pgid: pgid, stderr: &stderr, stdin: stdin}
}

// run sends script and waits for its end, returning its status.
func (s *shellRunner) run(t *testing.T, script string) int {
	t.Helper()
	s.write("t\nEND\n" + script + "\nEND\n")
	select {
	case code := <-s.out.ends:
		return code
	case <-time.After(20 * time.Second):
		t.Fatalf("%q did not end; stderr: %s", script, s.stderr.String())
		return 0
	}
}

// gone returns how long the runner's process group takes to be gone,
// failing the test past within. Zombies do not count: this machine's
// init reaps orphans only every few seconds.
func (s *shellRunner) gone(t *testing.T, within time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	for groupRuns(s.pgid) {
		if time.Since(start) > within {
			t.Fatalf("%s: the runner's process group still lives after %s", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func runShellRunner(t *testing.T, argv []string) {
	// Heartbeats at once after the header: the second reaches the
	// runner's timer just as it starts, before its USR1 trap.
	sr := startShellRunner(t, argv, "\n\n\n\n")
	write, out, stderr := sr.write, sr.out, sr.stderr
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
	sr.run(t, "true")
	write("t\nEND\nexec sleep 61\nEND\n")
	took := sr.gone(t, 30*time.Second, "heartbeats stopped")
	t.Logf("the runner's process group ended %s after the last heartbeat", took.Round(100*time.Millisecond))
}

// TestResidentShellsEndOfInput: "q" ends an idle runner at once; the end
// of its input (the session gone) with a command running sends the
// command TERM, and KILL killGraceRemote seconds later if it outlives it.
func TestResidentShellsEndOfInput(t *testing.T) {
	forShells(t, func(t *testing.T, argv []string) {
		sr := startShellRunner(t, argv, "\n")
		if code := sr.run(t, "true"); code != 0 {
			t.Fatalf("true: status %d", code)
		}
		sr.write("q\n")
		if took := sr.gone(t, 30*time.Second, "q"); took > 4*time.Second {
			t.Errorf("q after a command: the runner lived %s, want it gone at once", took)
		}
		// closed starts a runner, script on it, closes the runner's
		// input and returns how long its group then lives.
		closed := func(script string) time.Duration {
			sr := startShellRunner(t, argv, "\n")
			sr.out.set(nil)
			sr.write("t\nEND\n" + script + "\nEND\n")
			time.Sleep(200 * time.Millisecond)
			sr.stdin.Close()
			return sr.gone(t, 30*time.Second, fmt.Sprintf("%q at the end of input", script))
		}
		closed("exec sleep 61")
		if took := closed("trap '' TERM; exec sleep 61"); took < 4*time.Second {
			t.Errorf("a command that ignores TERM was gone %s after the end of input, before the grace", took)
		}
	})
}

// groupRuns reports whether a process of group pgid runs (is not a
// zombie).
func groupRuns(pgid int) bool {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...: comm may hold anything but
		// the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}
