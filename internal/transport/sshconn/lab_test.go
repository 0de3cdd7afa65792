package sshconn

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/lab"
	"github.com/sealflow/sealflow/internal/transport"
)

// Password login and sudo for a non-root user, on a lab host (its own
// namespaces and sshd) with user "deploy" whose sudo asks for a password.
func TestNonRootUser(t *testing.T) {
	l := lab.ForTest(t, lab.Config{Name: "sshconn", Masters: 1, User: "deploy", Password: true})
	h := l.Hosts[0]
	base := Config{Address: h.Address, User: l.User, KnownHosts: l.KnownHosts, HostName: h.Name}
	password := func() (string, error) { return l.Password, nil }
	dial := func(t *testing.T, cfg Config) *Conn {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c, err := Dial(ctx, cfg)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	run := func(t *testing.T, c *Conn, cmd transport.Command) string {
		t.Helper()
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		res, err := c.Exec(context.Background(), cmd)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("Exec %q: %v, exit %d, stderr %q", cmd.Script, err, res.ExitCode, errb.String())
		}
		return out.String()
	}
	pwCfg := base
	pwCfg.Password = password

	t.Run("password login", func(t *testing.T) {
		c := dial(t, pwCfg)
		if got := run(t, c, transport.Command{Script: "id -un"}); got != "deploy\n" {
			t.Errorf("logged in as %q, want deploy", got)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		cfg := base
		cfg.Password = func() (string, error) { return "wrong-" + l.Password, nil }
		_, err := Dial(context.Background(), cfg)
		var ae *AuthError
		if !errors.As(err, &ae) || !strings.Contains(err.Error(), "password") {
			t.Fatalf("want an *AuthError listing password, got %v", err)
		}
		if strings.Contains(err.Error(), l.Password) {
			t.Error("the error shows the password")
		}
	})

	t.Run("become with password", func(t *testing.T) {
		c := dial(t, pwCfg)
		got := run(t, c, transport.Command{
			Script: `id -u; echo "$A"; cat`,
			Env:    map[string]string{"A": "it's env"},
			Stdin:  strings.NewReader("user input\n"),
			Become: true,
		})
		if want := "0\nit's env\nuser input\n"; got != want {
			t.Errorf("become printed %q, want %q", got, want)
		}
		// The same connection without become is the user again.
		if got := run(t, c, transport.Command{Script: "id -u deploy >/dev/null; id -un"}); got != "deploy\n" {
			t.Errorf("without become: %q, want deploy", got)
		}
	})

	t.Run("commands follow Command.Become, not Config.Become", func(t *testing.T) {
		cfg := pwCfg
		cfg.Become = true
		c := dial(t, cfg)
		if got := run(t, c, transport.Command{Script: "id -un"}); got != "deploy\n" {
			t.Errorf("with Config.Become and no Command.Become: %q, want deploy", got)
		}
		if got := run(t, c, transport.Command{Script: "id -un", Become: true}); got != "root\n" {
			t.Errorf("with Command.Become: %q, want root", got)
		}
	})

	t.Run("sudo password and env not on any command line", func(t *testing.T) {
		c := dial(t, pwCfg)
		secret := "tok-" + hex.EncodeToString([]byte(time.Now().String()))[:16]
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		errc := make(chan error, 1)
		var out syncBuffer
		go func() {
			errc <- transport.Run(ctx, c, transport.Command{
				Script: "echo started; sleep 30", Env: map[string]string{"TOKEN": secret},
				Become: true, Stdout: &out,
			})
		}()
		waitFor(t, "the command to start", func() bool { return strings.Contains(out.String(), "started") })
		// Until the script's sleep runs, the check would prove nothing.
		var lines []string
		waitFor(t, "the command's sleep to run", func() bool {
			lines = cmdlines()
			for _, line := range lines {
				if strings.HasPrefix(line, "sleep 30") {
					return true
				}
			}
			return false
		})
		for _, line := range lines {
			if strings.Contains(line, secret) || strings.Contains(line, l.Password) {
				t.Errorf("a process shows a secret on its command line: %q", line)
			}
		}
		cancel()
		<-errc
	})

	// sudo's own words come through, with the fix, when its policy
	// (Defaults requiretty) refuses a session without a terminal.
	t.Run("sudo requiretty", func(t *testing.T) {
		ctx := context.Background()
		rule := "/etc/sudoers.d/zz-requiretty"
		if out, err := l.Exec(ctx, h.Name, "sh", "-c", "echo 'Defaults requiretty' >"+rule+" && chmod 0440 "+rule); err != nil {
			t.Fatalf("write %s: %v %s", rule, err, out)
		}
		t.Cleanup(func() { l.Exec(ctx, h.Name, "rm", "-f", rule) })
		for _, cfg := range []Config{pwCfg, func() Config { c := base; c.KeyFiles = []string{l.Key}; return c }()} {
			c := dial(t, cfg)
			_, err := c.Exec(ctx, transport.Command{Script: "id -u", Become: true})
			if err == nil || !strings.Contains(err.Error(), "sudo said: ") || !strings.Contains(err.Error(), "tty") ||
				!strings.Contains(err.Error(), "requiretty") || !strings.Contains(err.Error(), "tty: true") ||
				!strings.Contains(err.Error(), "Defaults:deploy !requiretty") {
				t.Errorf("want sudo's message about a tty and the fixes (tty: true, the sudoers line), got %v", err)
			}
			if err != nil && strings.Contains(err.Error(), "refused the password") {
				t.Errorf("the error blames the password: %v", err)
			}
		}

		// tty: true: the same sudo runs the command, with its output
		// and input byte for byte (no \r\n, no echo of the header or
		// the password), stderr merged into stdout.
		input := []byte("line 1\nline 2\r\n\x03\x04\x1a\x11\x13\x7f\x00end")
		big := bytes.Repeat([]byte("0123456789abcdef\n"), 8<<10) // 136 KiB, longer than a terminal's line
		for _, cfg := range []Config{pwCfg, func() Config { c := base; c.KeyFiles = []string{l.Key}; return c }()} {
			cfg.TTY = true
			c := dial(t, cfg)
			var out, errb bytes.Buffer
			res, err := c.Exec(ctx, transport.Command{
				Script: `id -u; printf 'a\nb\n'; echo to-stderr >&2; printf 'k=v\n' >"$SEALFLOW_TMP/o"; cat "$SEALFLOW_TMP/o"; cat`,
				Stdin:  bytes.NewReader(input), Become: true, Stdout: &out, Stderr: &errb,
			})
			if cfg.Password == nil {
				// sudo asks for a password and none is configured.
				if err == nil || !strings.Contains(err.Error(), "sudo asks user deploy for a password") {
					t.Errorf("tty without a password: want the no-password error, got %v", err)
				}
				continue
			}
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("tty: true: %v, exit %d, output %q", err, res.ExitCode, out.String())
			}
			want := "0\na\nb\nto-stderr\nk=v\n" + string(input)
			if got := out.String(); got != want {
				t.Errorf("tty: true printed %q, want %q", got, want)
			}
			if strings.Contains(out.String()+errb.String(), l.Password) {
				t.Error("the password echoed into the output")
			}
			// A caller's input longer than a terminal's line, and the
			// fast path (no sudo).
			out.Reset()
			res, err = c.Exec(ctx, transport.Command{Script: "id -un; cat", Stdin: bytes.NewReader(big), Stdout: &out})
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("tty: true without become: %v, exit %d", err, res.ExitCode)
			}
			if got, want := out.String(), "deploy\n"+string(big); got != want {
				t.Errorf("tty: true without become printed %d bytes, want %d (first difference near %d)", len(got), len(want), firstDiff(got, want))
			}
			// Without input: the watchdog's heartbeats do not reach the
			// script, which reads nothing.
			out.Reset()
			res, err = c.Exec(ctx, transport.Command{Script: "sleep 2; echo done; cat", Become: true, Stdout: &out})
			if err != nil || res.ExitCode != 0 || out.String() != "done\n" {
				t.Errorf("tty: true, no input: %v, exit %d, output %q, want \"done\\n\"", err, res.ExitCode, out.String())
			}
		}

		// The wrapper's own failure comes on the terminal's one stream
		// and still reaches the error.
		cfg := base
		cfg.TTY = true
		cfg.Password = func() (string, error) { return "wrong-" + l.Password, nil }
		cfg.KeyFiles = []string{l.Key}
		c := dial(t, cfg)
		var out bytes.Buffer
		_, err := c.Exec(ctx, transport.Command{Script: "id -u", Become: true, Stdout: &out})
		if err == nil || !strings.Contains(err.Error(), "sudo refused the password of user deploy") {
			t.Errorf("tty: true with a wrong password: want sudo's refusal, got %v", err)
		}
		if strings.Contains(out.String(), "refused") || strings.Contains(out.String(), l.Password) {
			t.Errorf("the wrapper's failure (or a password) went to the command's output: %q", out.String())
		}
	})

	t.Run("become without a password", func(t *testing.T) {
		cfg := base
		cfg.KeyFiles = []string{l.Key}
		c := dial(t, cfg)
		_, err := c.Exec(context.Background(), transport.Command{Script: "id -u", Become: true})
		if err == nil || !strings.Contains(err.Error(), "sudo asks user deploy for a password") {
			t.Errorf("want an error saying sudo needs a password, got %v", err)
		}
	})

	t.Run("become with a wrong password", func(t *testing.T) {
		cfg := base
		cfg.KeyFiles = []string{l.Key}
		cfg.Password = func() (string, error) { return "wrong", nil }
		c := dial(t, cfg)
		_, err := c.Exec(context.Background(), transport.Command{Script: "id -u", Become: true})
		if err == nil || !strings.Contains(err.Error(), "sudo refused the password of user deploy") {
			t.Errorf("want an error saying sudo refused the password, got %v", err)
		}
	})

	t.Run("cancel kills the root command", func(t *testing.T) {
		c := dial(t, pwCfg)
		ctx, cancel := context.WithCancel(context.Background())
		var out syncBuffer
		errc := make(chan error, 1)
		go func() {
			_, err := c.Exec(ctx, transport.Command{Script: "sleep 300 & echo $!; wait", Become: true, Stdout: &out})
			errc <- err
		}()
		waitFor(t, "the sleep to start", func() bool { return strings.HasSuffix(out.String(), "\n") })
		pid := strings.TrimSpace(out.String())
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Exec returned %v, want context.Canceled", err)
		}
		waitFor(t, "the root sleep to be gone", func() bool {
			got := run(t, c, transport.Command{Script: `if [ -d /proc/$P ] && ! grep -q '^State:.*Z' /proc/$P/status; then echo alive; else echo gone; fi`, Env: map[string]string{"P": pid}})
			return got == "gone\n"
		})
	})

	// As root through sudo (the wrapper's slow path): after a timeout a
	// script that ignores TERM is killed whole by the runner after the
	// grace period; when the session's sshd dies the watchdog stops the
	// command before it finishes.
	t.Run("become: timeout kills a script ignoring TERM", func(t *testing.T) {
		c := dial(t, pwCfg)
		tag := randomTag(t)
		var out syncBuffer
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := c.Exec(ctx, transport.Command{
			Script: "trap \"\" TERM\n(trap \"\" TERM; sleep 1000) &\necho started\nsleep 1000",
			Env:    map[string]string{"SEALFLOW_TEST_TAG": tag}, Become: true, Stdout: &out,
		})
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(out.String(), "started") {
			t.Fatalf("Exec: %v, output %q; want the deadline after the start", err, out.String())
		}
		waitFor(t, "nothing of the root command left", func() bool { return len(tagged(tag)) == 0 })
	})

	t.Run("become: sshd killed stops the command", func(t *testing.T) {
		c := dial(t, pwCfg)
		tag := randomTag(t)
		done := "/tmp/sealflow-become-finished"
		var out syncBuffer
		errc := make(chan error, 1)
		go func() {
			_, err := c.Exec(context.Background(), transport.Command{Script: finishingScript, Become: true, Stdout: &out,
				Env: map[string]string{"DONEFILE": done, "SEALFLOW_TEST_TAG": tag}})
			errc <- err
		}()
		waitFor(t, "the command to start", func() bool { return strings.Contains(out.String(), "started") })
		// The sshd processes serving connections (the privileged monitor
		// and the user's process): every sshd of the host but the listener.
		kill := `l=$(cat /run/sshd.pid)
for p in /proc/[0-9]*; do
	read -r c <"$p/comm" 2>/dev/null || continue
	case $c in sshd*) [ "${p#/proc/}" = "$l" ] || kill -KILL "${p#/proc/}";; esac
done
:`
		if o, err := l.Exec(context.Background(), h.Name, "sh", "-c", kill); err != nil {
			t.Fatalf("kill sshd: %v %s", err, o)
		}
		select {
		case err := <-errc:
			if !errors.Is(err, transport.ErrOutcomeUnknown) {
				t.Errorf("Exec: %v, want an unknown outcome", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Exec did not return")
		}
		waitFor(t, "the root command to be gone", func() bool { return len(tagged(tag)) == 0 })
		time.Sleep(13 * time.Second)
		if o, _ := l.Exec(context.Background(), h.Name, "sh", "-c", "test -e "+done+" && echo finished || :"); strings.Contains(o, "finished") {
			t.Error("the root command went on to finish after its session died")
		}
	})

	t.Run("upload", func(t *testing.T) {
		data := bytes.Repeat([]byte("sealflow "), 100000)
		s := sha256.Sum256(data)
		sum := hex.EncodeToString(s[:])
		ctx := context.Background()

		// As the user: the file is the user's.
		c := dial(t, pwCfg)
		if err := c.Upload(ctx, bytes.NewReader(data), "/home/deploy/pkg/data.bin", 0o640, sum); err != nil {
			t.Fatal(err)
		}
		if got := run(t, c, transport.Command{Script: "stat -c '%U %a %s' /home/deploy/pkg/data.bin; sha256sum </home/deploy/pkg/data.bin"}); got != "deploy 640 900000\n"+sum+"  -\n" {
			t.Errorf("user upload: %q", got)
		}
		// Without become a root-owned place is refused, clearly.
		err := c.Upload(ctx, bytes.NewReader(data), "/etc/sealflow/data.bin", 0o644, sum)
		if err == nil || !strings.Contains(err.Error(), "/etc/sealflow") {
			t.Errorf("upload to /etc without become: %v, want a permission error naming the path", err)
		}

		// With become: root's file, through the user's private partial dir.
		cfg := pwCfg
		cfg.Become = true
		cb := dial(t, cfg)
		if err := cb.Upload(ctx, bytes.NewReader(data), "/etc/sealflow/data.bin", 0o600, sum); err != nil {
			t.Fatal(err)
		}
		if got := run(t, cb, transport.Command{Become: true, Script: "stat -c '%U %a' /etc/sealflow/data.bin; sha256sum </etc/sealflow/data.bin; ls -A /etc/sealflow /home/deploy/.sealflow-partial"}); got != "root 600\n"+sum+"  -\n/etc/sealflow:\ndata.bin\n\n/home/deploy/.sealflow-partial:\n" {
			t.Errorf("become upload: %q", got)
		}
		counted := &countingReader{r: bytes.NewReader(data)}
		if err := cb.Upload(ctx, counted, "/etc/sealflow/data.bin", 0o600, sum); err != nil || counted.n != 0 {
			t.Errorf("second become upload: %v, read %d bytes; want nothing sent", err, counted.n)
		}
	})
}

// firstDiff returns the index of the first byte where a and b differ.
func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
