package sshconn

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/internal/transport"
)

func TestExec(t *testing.T) {
	s := startSSHD(t, "")
	c := s.dial(s.config())
	hostile := "it's $(touch /tmp/pwned) `id` ; \"x\" \\ \n new line\t ünï €"
	tests := []struct {
		name       string
		cmd        transport.Command
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "stdout", cmd: transport.Command{Script: "echo hello"}, wantStdout: "hello\n"},
		{name: "stderr and code", cmd: transport.Command{Script: "echo oops >&2; exit 7"}, wantCode: 7, wantStderr: "oops\n"},
		{name: "errexit", cmd: transport.Command{Script: "false\necho not reached"}, wantCode: 1},
		{name: "env", cmd: transport.Command{Script: `printf '%s|%s' "$A" "$B"`, Env: map[string]string{"A": hostile, "B": ""}}, wantStdout: hostile + "|"},
		{name: "stdin", cmd: transport.Command{Script: "tr a-z A-Z", Stdin: strings.NewReader("some input\nmore")}, wantStdout: "SOME INPUT\nMORE"},
		{name: "no stdin", cmd: transport.Command{Script: "cat; echo end"}, wantStdout: "end\n"},
		{name: "multi-line script", cmd: transport.Command{Script: "x=1\nif [ $x = 1 ]; then\n  echo one\nfi\n"}, wantStdout: "one\n"},
		{name: "become as root", cmd: transport.Command{Script: "id -u", Become: true}, wantStdout: "0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errb bytes.Buffer
			cmd := tt.cmd
			cmd.Stdout, cmd.Stderr = &out, &errb
			res, err := c.Exec(context.Background(), cmd)
			if err != nil {
				t.Fatalf("Exec: %v", err)
			}
			got := []any{res.ExitCode, out.String(), errb.String()}
			want := []any{tt.wantCode, tt.wantStdout, tt.wantStderr}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("code, stdout, stderr (-want +got):\n%s", d)
			}
		})
	}
}

// The script and its environment are stored in a private directory
// while it runs, and nothing is left behind.
func TestExecLeavesNoFiles(t *testing.T) {
	s := startSSHD(t, "")
	c := s.dial(s.config())
	var out bytes.Buffer
	res, err := c.Exec(context.Background(), transport.Command{
		Script: `d=$SEALFLOW_TMP; stat -c %a "$d"; echo "$d"`,
		Env:    map[string]string{"SECRET": "s3cret"},
		Stdout: &out,
	})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Exec: %v, %v", res, err)
	}
	mode, dir, _ := strings.Cut(strings.TrimSpace(out.String()), "\n")
	if mode != "700" {
		t.Errorf("the command's directory %s has mode %s, want 700", dir, mode)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the command's directory %s is still there (%v)", dir, err)
	}
}

func TestExecRejectsBadEnvName(t *testing.T) {
	s := startSSHD(t, "")
	c := s.dial(s.config())
	_, err := c.Exec(context.Background(), transport.Command{Script: "true", Env: map[string]string{"A;B": "x"}})
	if err == nil || !strings.Contains(err.Error(), `"A;B"`) {
		t.Fatalf("want an error naming the variable, got %v", err)
	}
}

func TestExecConcurrentAboveMaxSessions(t *testing.T) {
	s := startSSHD(t, "")
	c := s.dial(s.config())
	const n = 30
	var wg sync.WaitGroup
	errs := make([]error, n)
	outs := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out bytes.Buffer
			res, err := c.Exec(context.Background(), transport.Command{
				Script: `sleep 0.2; echo "$N"`,
				Env:    map[string]string{"N": strings.Repeat("x", i)},
				Stdout: &out,
			})
			if err == nil && res.ExitCode != 0 {
				err = &transport.ExitError{Code: res.ExitCode}
			}
			errs[i], outs[i] = err, out.String()
		}()
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Errorf("command %d: %v", i, errs[i])
		} else if want := strings.Repeat("x", i) + "\n"; outs[i] != want {
			t.Errorf("command %d printed %q, want %q", i, outs[i], want)
		}
	}
}
