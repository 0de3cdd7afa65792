package sshconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/internal/lab"
	"github.com/sealflow/sealflow/internal/transport"
)

type outcome struct {
	Code           int
	Stdout, Stderr string
}

func execOutcome(t *testing.T, c *Conn, cmd transport.Command) outcome {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	res, err := c.Exec(context.Background(), cmd)
	if err != nil {
		t.Fatalf("Exec %q: %v", cmd.Script, err)
	}
	return outcome{res.ExitCode, out.String(), errb.String()}
}

// Commands in a row on one runner each get their own output, status and
// shell state, as they would in sessions of their own.
func TestResidentCommandsInARow(t *testing.T) {
	s := startSSHD(t, "")
	c := s.dial(s.config())
	var runner *resident
	for i := range 40 {
		got := execOutcome(t, c, transport.Command{
			Script: fmt.Sprintf("echo out %d; echo err %d >&2; exit %d", i, i, i%5),
		})
		want := outcome{i % 5, fmt.Sprintf("out %d\n", i), fmt.Sprintf("err %d\n", i)}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("command %d (-want +got):\n%s", i, d)
		}
		if i == 0 {
			runner = c.res
		}
	}
	if runner == nil || c.res != runner {
		t.Fatalf("the commands did not all run on one runner (first %p, now %p)", runner, c.res)
	}

	home := strings.TrimSpace(execOutcome(t, c, transport.Command{Script: `echo "$HOME"`}).Stdout)
	big := strings.Repeat("a", 1<<20)
	tests := []struct {
		name string
		cmd  transport.Command
		want outcome
	}{
		{"exit in the script", transport.Command{Script: "echo a; exit 3; echo b"}, outcome{3, "a\n", ""}},
		{"errexit", transport.Command{Script: "false\necho not reached"}, outcome{1, "", ""}},
		{"NUL bytes and a marker's start", transport.Command{Script: `printf 'x\000sealflow-end-\000y\000sealflow-end-0123 4\000z'`},
			outcome{0, "x\x00sealflow-end-\x00y\x00sealflow-end-0123 4\x00z", ""}},
		{"a MiB of output", transport.Command{Script: `head -c 1048576 /dev/zero | tr '\000' a`}, outcome{0, big, ""}},
		{"output without a newline", transport.Command{Script: "printf no-newline; printf e >&2"}, outcome{0, "no-newline", "e"}},
		{"environment", transport.Command{Script: `printf '%s' "$A"`, Env: map[string]string{"A": "it's\nx"}}, outcome{0, "it's\nx", ""}},
		{"stdin is empty", transport.Command{Script: "cat; echo end"}, outcome{0, "end\n", ""}},
		// What one command changes stays with it.
		{"change the shell's state", transport.Command{Script: "cd /; X=1; export Y=2; umask 022; trap 'echo trapped' EXIT; alias ll=ls"}, outcome{0, "trapped\n", ""}},
		{"state is not kept", transport.Command{Script: `pwd; echo "[$X$Y]"; umask; alias ll 2>/dev/null || echo no alias`}, outcome{0, home + "\n[]\n0077\nno alias\n", ""}},
		// The runner's own names are not the command's.
		{"runner names unset", transport.Command{Script: `set | grep -c '^_sf' || true; env | grep -c sealflow-end || true`}, outcome{0, "0\n0\n", ""}},
	}
	for _, tt := range tests {
		if got := execOutcome(t, c, tt.cmd); !cmp.Equal(tt.want, got) {
			if len(got.Stdout) > 200 {
				got.Stdout = fmt.Sprintf("%d bytes: %.100q...", len(got.Stdout), got.Stdout)
			}
			t.Errorf("%s: got %+v, want %.200v", tt.name, got, tt.want)
		}
	}
	if c.res != runner {
		t.Errorf("a command left the runner")
	}
}

// A cancelled command on the runner is killed with the runner; the next
// command starts a new one.
func TestResidentCancel(t *testing.T) {
	s := startSSHD(t, "")
	c := s.dial(s.config())
	if got := execOutcome(t, c, transport.Command{Script: "echo first"}); got.Stdout != "first\n" {
		t.Fatalf("first command: %+v", got)
	}
	first := c.res
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Exec(ctx, transport.Command{Script: "echo started; exec sleep 61"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Exec of a command past its deadline: %v, want the deadline", err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("the cancelled command took %s to return", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := execOutcome(t, c, transport.Command{Script: "pgrep -x -f 'sleep 61' || echo none"})
		if got.Stdout == "none\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cancelled command still runs on the host: %+v", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c.res == nil || c.res == first {
		t.Errorf("the command after the cancelled one did not start a new runner")
	}
}

// Commands at once on one connection: one takes the runner, the others
// sessions of their own; no output goes to the wrong command. (On a lab
// host: a fresh /root, whose rc files print nothing. This machine's own
// may, from sessions at once.)
func TestResidentConcurrent(t *testing.T) {
	l := lab.ForTest(t, lab.Config{Name: "resconc", Masters: 1})
	h := l.Hosts[0]
	c, err := Dial(context.Background(), Config{Address: h.Address, User: "root", KnownHosts: l.KnownHosts, HostName: h.Name, KeyFiles: []string{l.Key}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				var out, errb bytes.Buffer
				res, err := c.Exec(context.Background(), transport.Command{
					Script: fmt.Sprintf("echo g%d-%d; echo e%d-%d >&2; exit %d", g, i, g, i, g),
					Stdout: &out, Stderr: &errb,
				})
				switch {
				case err != nil:
					errs <- err.Error()
				case res.ExitCode != g || out.String() != fmt.Sprintf("g%d-%d\n", g, i) || errb.String() != fmt.Sprintf("e%d-%d\n", g, i):
					errs <- fmt.Sprintf("g%d-%d: code %d, stdout %q, stderr %q", g, i, res.ExitCode, out.String(), errb.String())
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if c.res == nil {
		t.Error("no command ran on the runner")
	}
}

// Where the wrapper does not lead its process group (here sshd runs every
// command in a subshell), there is no runner: commands take sessions, and
// run as before.
func TestResidentRefused(t *testing.T) {
	s := startSSHD(t, "", `ForceCommand /bin/sh -c '(eval "$SSH_ORIGINAL_COMMAND")'`)
	c := s.dial(s.config())
	for i := range 3 {
		if got := execOutcome(t, c, transport.Command{Script: fmt.Sprintf("echo %d; exit %d", i, i)}); !cmp.Equal(got, outcome{i, fmt.Sprintf("%d\n", i), ""}) {
			t.Errorf("command %d: %+v", i, got)
		}
	}
	if !c.resOff {
		t.Error("the connection did not give up the runner")
	}
}

func TestResidentFits(t *testing.T) {
	for script, want := range map[string]bool{
		"true":                      true,
		"a && b; c >&2; d <&3":      true,
		"echo $SEALFLOW_TMP":        false,
		"echo $$":                   false,
		"echo ${$}":                 false,
		"sleep 9 &":                 false,
		"sleep 9 & wait":            false,
		"a && b & c":                false,
		"cmd &>/dev/null":           false,
		strings.Repeat("x", 1<<20):  false,
		"echo 'a & b' # quoted too": false,
	} {
		if got := residentFits(transport.Command{Script: script}); got != want {
			t.Errorf("residentFits(%.40q) = %v, want %v", script, got, want)
		}
	}
	if residentFits(transport.Command{Script: "true", Env: map[string]string{"A": strings.Repeat("x", inlineMax)}}) {
		t.Error("residentFits of a command with a large environment = true, want false")
	}
}

// A host that allows few sessions (sshd's MaxSessions 2: the SFTP
// client's and one more) gets the runner's slot back when a command needs
// a session of its own; the connection then goes on without a runner.
func TestResidentYieldsToFewSessions(t *testing.T) {
	s := startSSHD(t, "", "MaxSessions 2")
	c := s.dial(s.config())
	if got := execOutcome(t, c, transport.Command{Script: "echo on the runner"}); got.Stdout != "on the runner\n" {
		t.Fatalf("first command: %+v", got)
	}
	if c.res == nil {
		t.Fatal("the first command did not start a runner")
	}
	dst := t.TempDir() + "/file"
	if err := c.Upload(context.Background(), strings.NewReader("data"), dst, 0o600, ""); err != nil {
		t.Fatalf("upload beside the runner: %v", err)
	}
	// stdin of its own: a session, for which the runner gives way.
	got := execOutcome(t, c, transport.Command{Script: "cat", Stdin: strings.NewReader("in\n")})
	if got.Stdout != "in\n" {
		t.Fatalf("command with stdin: %+v", got)
	}
	for i := range 3 {
		if got := execOutcome(t, c, transport.Command{Script: fmt.Sprintf("echo %d", i)}); got.Stdout != fmt.Sprintf("%d\n", i) {
			t.Errorf("command %d after the runner gave way: %+v", i, got)
		}
	}
	if c.res != nil || !c.resOff {
		t.Error("the connection started another runner on a host with two sessions")
	}
}

// The demux finds markers however the stream is cut into reads, and
// passes on what only looks like one.
func TestDemuxSplitReads(t *testing.T) {
	marker := "\x00sealflow-end-tok "
	stream := "out1" + marker + "7\x00" + "x\x00sealflow-end-tok 1a" + marker + "0\x00" + "tail\x00sealflow-end-t"
	for _, name := range []string{"whole", "one byte at a time"} {
		d := newDemux([]byte(marker))
		var got bytes.Buffer
		d.set(&got)
		var r io.Reader = strings.NewReader(stream)
		if name != "whole" {
			r = iotest.OneByteReader(r)
		}
		d.run(r)
		close(d.ends)
		var codes []int
		for c := range d.ends {
			codes = append(codes, c)
		}
		if want := "out1x\x00sealflow-end-tok 1atail\x00sealflow-end-t"; got.String() != want || !cmp.Equal(codes, []int{7, 0}) {
			t.Errorf("%s: passed %q and statuses %v, want %q and [7 0]", name, got.String(), codes, want)
		}
	}
}
