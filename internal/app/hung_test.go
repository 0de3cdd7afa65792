package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/lab"
)

// signalSSHD sends sig to every sshd process of a lab host (the listener
// and those serving connections), from inside the host's PID namespace.
func signalSSHD(t *testing.T, l *lab.Lab, host, sig string) {
	t.Helper()
	script := `for p in /proc/[0-9]*; do
	read -r c <"$p/comm" 2>/dev/null || continue
	case $c in sshd*) kill -` + sig + ` "${p#/proc/}" 2>/dev/null;; esac
done`
	if out, err := l.Exec(context.Background(), host, "sh", "-c", script); err != nil {
		t.Fatalf("kill -%s sshd on %s: %v %s", sig, host, err, out)
	}
}

// A hung host (its sshd stopped with SIGSTOP) fails a task with
// `timeout: 5s` after about 5 s, whether the host hangs before the
// connection (the dial) or while the command runs.
func TestHungHostTaskTimesOut(t *testing.T) {
	l := lab.ForTest(t, lab.Config{Name: "hung", Masters: 1})
	h := l.Hosts[0].Name
	for _, when := range []string{"before the run", "while the command runs"} {
		t.Run(when, func(t *testing.T) {
			dir := t.TempDir()
			plan := filepath.Join(dir, "plan.yaml")
			os.WriteFile(plan, []byte("name: hung\nsteps:\n  - id: slow\n    kind: shell\n    on: all\n    timeout: 5s\n    with: {run: 'touch /tmp/hung-started; sleep 60'}\n"), 0o644)
			l.Exec(context.Background(), h, "rm", "-f", "/tmp/hung-started")
			var out bytes.Buffer
			streams := IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out}
			if when == "before the run" {
				signalSSHD(t, l, h, "STOP")
			}
			defer signalSSHD(t, l, h, "CONT")
			errc := make(chan error, 1)
			start := time.Now()
			go func() {
				errc <- Run(context.Background(), RunOptions{
					ExecOptions: ExecOptions{StateDir: filepath.Join(dir, "state"), Output: "plain", Connect: ConnectOptions{KnownHosts: l.KnownHosts, DialTimeout: time.Minute}},
					PlanFile:    plan, InventoryFile: l.Inventory,
				}, streams)
			}()
			if when == "while the command runs" {
				deadline := time.Now().Add(60 * time.Second)
				for {
					if o, _ := l.Exec(context.Background(), h, "sh", "-c", "test -e /tmp/hung-started && echo yes || :"); strings.Contains(o, "yes") {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("the command did not start")
					}
					time.Sleep(50 * time.Millisecond)
				}
				signalSSHD(t, l, h, "STOP")
			}
			var err error
			select {
			case err = <-errc:
			case <-time.After(60 * time.Second):
				signalSSHD(t, l, h, "CONT")
				t.Fatal("the run did not end")
			}
			took := time.Since(start)
			if Code(err) != ExitFailed || !strings.Contains(out.String(), "timed out after 5s") {
				t.Errorf("run: %v (exit %d), output:\n%s\nwant the task failed, timed out after 5s", err, Code(err), out.String())
			}
			// 5 s, and at most 2 s more to find the host hung when it is
			// asked to stop the command.
			if took > 9*time.Second {
				t.Errorf("the run took %s, want about 5s", took.Round(time.Millisecond))
			}
		})
	}
}

// The connection to a host lost while a shell task runs (sshd's processes
// for it killed): the task does not go on to finish on the host, the run
// fails it as an unknown outcome, and resume asks instead of running the
// non-rerunnable task a second time.
func TestLostConnectionAsksOnResume(t *testing.T) {
	l := lab.ForTest(t, lab.Config{Name: "lost", Masters: 1})
	h := l.Hosts[0].Name
	dir := t.TempDir()
	plan := filepath.Join(dir, "plan.yaml")
	os.WriteFile(plan, []byte("name: lost\nsteps:\n  - id: once\n    kind: shell\n    on: all\n    with: {run: 'echo x >> /root/count; sleep 10; touch /root/finished'}\n"), 0o644)
	state := filepath.Join(dir, "state")
	var out bytes.Buffer
	streams := IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out}
	conn := ConnectOptions{KnownHosts: l.KnownHosts}
	errc := make(chan error, 1)
	go func() {
		errc <- Run(context.Background(), RunOptions{ExecOptions: ExecOptions{StateDir: state, Output: "plain", Connect: conn}, PlanFile: plan, InventoryFile: l.Inventory}, streams)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if o, _ := l.Exec(context.Background(), h, "sh", "-c", "test -e /root/count && echo yes || :"); strings.Contains(o, "yes") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the task did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	kill := `l=$(cat /run/sshd.pid)
for p in /proc/[0-9]*; do
	read -r c <"$p/comm" 2>/dev/null || continue
	case $c in sshd*) [ "${p#/proc/}" = "$l" ] || kill -KILL "${p#/proc/}";; esac
done
:`
	if o, err := l.Exec(context.Background(), h, "sh", "-c", kill); err != nil {
		t.Fatalf("kill sshd: %v %s", err, o)
	}
	var err error
	select {
	case err = <-errc:
	case <-time.After(60 * time.Second):
		t.Fatal("the run did not end")
	}
	if Code(err) != ExitFailed || !strings.Contains(out.String(), "outcome is unknown") {
		t.Errorf("run: %v, output:\n%s\nwant the task failed with an unknown outcome", err, out.String())
	}
	out.Reset()
	err = Resume(context.Background(), ResumeOptions{ExecOptions: ExecOptions{StateDir: state, Output: "plain", Connect: conn}}, streams)
	if Code(err) != ExitInvalid || !strings.Contains(err.Error(), "--rerun once@") || !strings.Contains(err.Error(), "connection was lost") {
		t.Errorf("resume: %v, want exit 2 asking about once (the connection was lost)", err)
	}
	time.Sleep(11 * time.Second) // past the script's sleep
	o, _ := l.Exec(context.Background(), h, "sh", "-c", "cat /root/count; test -e /root/finished && echo finished || :")
	if o != "x\n" {
		t.Errorf("on the host: %q, want the task started once and not finished", o)
	}
}
