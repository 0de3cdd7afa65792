package sshconn

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/internal/transport"
)

// The programs the host starts per command, counted from the execve and
// clone calls of a real sshd traced by strace: the login shell and the
// wrapper's sh; mktemp and rm only for a script that names $SEALFLOW_TMP;
// none for a command on the connection's runner, which started those two
// once.
// (Before, every command also started mktemp, head, setsid, a second sh
// and rm.) What the login shell's rc files start before it runs the
// wrapper (root's ~/.bashrc, which bash reads under sshd) is the host's,
// not the wrapper's: it is logged, not counted.
func TestExecProgramsPerCommand(t *testing.T) {
	needSSHD(t)
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("needs strace (Debian package strace) to count the programs the host starts")
	}
	tests := []struct {
		name  string
		cmd   transport.Command
		stdin string
		want  []string
	}{
		{name: "builtin only", cmd: transport.Command{Script: "true"}, want: []string{"LOGIN", "sh"}},
		{name: "env and stdin", cmd: transport.Command{Script: `read -r x; [ "$x" = "$A" ]`, Env: map[string]string{"A": "it's"}}, stdin: "it's\n", want: []string{"LOGIN", "sh"}},
		{name: "with SEALFLOW_TMP", cmd: transport.Command{Script: `echo x >"$SEALFLOW_TMP/f"`}, want: []string{"LOGIN", "sh", "mktemp", "rm"}},
		{name: "become as root", cmd: transport.Command{Script: "true", Become: true}, want: []string{"LOGIN", "sh"}},
	}
	const k = 3
	trace := filepath.Join(t.TempDir(), "trace")
	s := startSSHDUnder(t, []string{"strace", "-f", "-qq", "-s", "64", "-e", "trace=execve,clone,clone3,fork,vfork", "-e", "signal=none", "-o", trace}, "")
	c := s.dial(s.config())
	for _, tt := range tests {
		for range k {
			cmd := tt.cmd
			cmd.Stdin = strings.NewReader(tt.stdin)
			if err := transport.Run(context.Background(), c, cmd); err != nil {
				t.Fatalf("%s: Exec: %v", tt.name, err)
			}
		}
	}
	c.Close()
	// Commands without stdin of their own run on the connection's
	// runner: it starts the login shell and the wrapper's sh once, then
	// nothing per command (but its watchdog's sleep, once a heartbeat
	// has come).
	c = s.dial(s.config())
	for range 5 {
		if err := transport.Run(context.Background(), c, transport.Command{Script: "true"}); err != nil {
			t.Fatalf("on the runner: Exec: %v", err)
		}
	}
	if c.res == nil {
		t.Error("the commands did not run on the runner")
	}
	c.Close()
	s.stop() // strace writes the rest of its trace and ends with sshd
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	cmds, rc := wrapperPrograms(string(b))
	t.Logf("the login shell's rc files started %d programs per command (not counted)", rc/max(len(cmds), 1))
	var want [][]string
	for _, tt := range tests {
		for range k {
			want = append(want, loginShell(t, tt.want))
		}
	}
	want = append(want, loginShell(t, []string{"LOGIN", "sh"}))
	if n := len(cmds); n > 0 {
		last := cmds[n-1][:0:0]
		for _, p := range cmds[n-1] {
			if p != "sleep" {
				last = append(last, p)
			}
		}
		cmds[n-1] = last
	}
	if d := cmp.Diff(want, cmds); d != "" {
		t.Errorf("programs per command, in the order run (-want +got):\n%s", d)
	}
}

// loginShell replaces "LOGIN" in want by root's login shell.
func loginShell(t *testing.T, want []string) []string {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	shell := "sh"
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Split(line, ":"); len(f) == 7 && f[0] == "root" {
			shell = filepath.Base(f[6])
		}
	}
	out := append([]string(nil), want...)
	for i, w := range out {
		if w == "LOGIN" {
			out[i] = shell
		}
	}
	return out
}

var (
	straceLine = regexp.MustCompile(`^(\d+) +(?:<\.\.\. )?(execve|clone3?|v?fork)(?:\(| resumed>)(.*)$`)
	execPath   = regexp.MustCompile(`^"([^"]*)"`)
	result     = regexp.MustCompile(` = (-?\d+)(?: .*)?$`)
)

// wrapperPrograms reads an `strace -f` trace of sshd and returns, per
// wrapper started (in order), the base names of the programs of its
// command: the login shell that ran it, the wrapper's sh, and every
// program started by processes the wrapper forked. rc counts what login
// shells started before they ran the wrapper.
func wrapperPrograms(trace string) (cmds [][]string, rc int) {
	type call struct {
		pid  int
		name string
		path string // execve
		ret  int
		done bool
	}
	var calls []*call
	open := map[int]*call{} // a call split by strace: "<unfinished ...>" then "<... resumed>"
	for _, line := range strings.Split(trace, "\n") {
		m := straceLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		resumed := strings.Contains(line, " resumed>")
		c := open[pid]
		if !resumed || c == nil {
			c = &call{pid: pid, name: m[2]}
			if pm := execPath.FindStringSubmatch(m[3]); pm != nil {
				c.path = pm[1]
			}
			if strings.Contains(m[3], "\"-c\", \"umask 077\\n") {
				c.name = "wrapper"
			}
			calls = append(calls, c)
		}
		delete(open, pid)
		if strings.HasSuffix(line, "<unfinished ...>") {
			open[pid] = c
			continue
		}
		if r := result.FindStringSubmatch(line); r != nil {
			c.ret, _ = strconv.Atoi(r[1])
			c.done = true
		}
	}
	parent := map[int]int{}
	forkedAt := map[int]int{} // child → index of the call that made it
	for i, c := range calls {
		if c.done && c.ret > 0 && c.name != "execve" && c.name != "wrapper" {
			parent[c.ret], forkedAt[c.ret] = c.pid, i
		}
	}
	// under reports whether pid descends from w through forks made after
	// index at.
	under := func(pid, w, at int) bool {
		for pid != w {
			p, ok := parent[pid]
			if !ok || forkedAt[pid] < at {
				return false
			}
			pid = p
		}
		return true
	}
	for i, c := range calls {
		if c.name != "wrapper" || !c.done || c.ret != 0 {
			continue
		}
		login := ""
		for j := i - 1; j >= 0; j-- {
			if p := calls[j]; p.pid == c.pid && (p.name == "execve" || p.name == "wrapper") && p.done && p.ret == 0 {
				login = filepath.Base(p.path)
				break
			}
		}
		progs := []string{login, filepath.Base(c.path)}
		for j, p := range calls {
			if p.name != "execve" || !p.done || p.ret != 0 || p.pid == c.pid {
				continue
			}
			switch {
			case under(p.pid, c.pid, i):
				progs = append(progs, filepath.Base(p.path))
			case j < i && under(p.pid, c.pid, 0):
				rc++
			}
		}
		cmds = append(cmds, progs)
	}
	return cmds, rc
}
