package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExitCodes checks the exact exit codes (testscript only tells zero
// from non-zero): 0 success, 1 a task failed, 2 invalid input, 130
// interrupted; and that a second run on a state directory in use is
// refused with 2.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	bin := sealflowBin(t)
	dir := t.TempDir()
	hosts := "hosts: {groups: {g: [{name: h, address: local}]}}\n"
	plans := map[string]string{
		"ok.yaml":    "name: ok\n" + hosts + "steps:\n  - {id: a, kind: shell, with: {run: 'true'}}\n",
		"fail.yaml":  "name: fail\n" + hosts + "steps:\n  - {id: a, kind: shell, with: {run: 'exit 7'}}\n",
		"bad.yaml":   "name: bad\n" + hosts + "steps:\n  - {id: a, kind: nope}\n",
		"int.yaml":   "name: int\n" + hosts + "steps:\n  - id: a\n    kind: shell\n    with:\n      run: |\n        p=$PPID; while [ \"$p\" -gt 1 ] && [ \"$(cat /proc/$p/comm)\" != sealflow ]; do p=$(cut -d' ' -f4 /proc/$p/stat); done; [ \"$p\" -gt 1 ]\n        kill -INT $p\n        sleep 30\n",
		"sleep.yaml": "name: sleep\n" + hosts + "steps:\n  - {id: a, kind: shell, with: {run: 'touch started; sleep 30'}}\n",
		// A file to send that is not on this machine: refused before a host is touched.
		"nosrc.yaml": "name: nosrc\n" + hosts + "steps:\n  - {id: a, kind: shell, with: {run: 'touch touched'}}\n  - {id: b, kind: copy, with: {src: ./no-such-file, dest: /tmp/x}}\n",
		// One an earlier step makes is not refused.
		"made.yaml": "name: made\n" + hosts + "steps:\n  - {id: a, kind: shell, with: {run: 'echo hi > made.txt'}}\n  - {id: b, kind: copy, needs: [a], with: {src: ./made.txt, dest: " + filepath.Join(dir, "copied.txt") + "}}\n",
	}
	for name, text := range plans {
		write(t, filepath.Join(dir, name), text)
	}
	for _, tc := range []struct {
		plan string
		want int
	}{{"ok.yaml", 0}, {"fail.yaml", 1}, {"bad.yaml", 2}, {"missing.yaml", 2}, {"int.yaml", 130}, {"nosrc.yaml", 2}, {"made.yaml", 0}} {
		_, stderr, code := sf(t, bin, dir, "", "run", "--state", "st-"+tc.plan, "--output", "plain", tc.plan)
		if code != tc.want {
			t.Errorf("run %s: exit %d, want %d\n%s", tc.plan, code, tc.want, stderr)
		}
	}

	if b, err := os.ReadFile(filepath.Join(dir, "copied.txt")); err != nil || string(b) != "hi\n" {
		t.Errorf("the copy of a file an earlier step made: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "touched")); err == nil {
		t.Error("a run with a missing file to send ran a task")
	}
	if _, err := os.Stat(filepath.Join(dir, "st-nosrc.yaml")); err == nil {
		t.Error("a run with a missing file to send left a state directory")
	}

	// Hostile input is refused fast, with where and why, exit 2.
	for _, args := range [][]string{{"validate", "/dev/urandom"}, {"validate", "-i", "/dev/urandom", "ok.yaml"}, {"run", "--state", "st-urandom", "/dev/urandom"}} {
		_, stderr, code := sf(t, bin, dir, "", args...)
		if code != 2 || !strings.Contains(stderr, "/dev/urandom: the file is larger than the limit of 4 MiB") {
			t.Errorf("%v: exit %d, want 2 and the size limit\n%s", args, code, stderr)
		}
	}

	// A lab asked for wrongly is an input error too.
	for _, args := range [][]string{{"lab", "up", "--name", "B!"}, {"lab", "exec", "nolab", "m1", "--", "true"}, {"lab", "down", "--name", "B!"},
		{"lab", "up", "--name", "x", "--rate", "fast"}, {"lab", "egress", "--name", "nolab"}} {
		_, stderr, code := sf(t, bin, dir, "", args...)
		if code != 2 || !strings.Contains(stderr, "lab") {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, stderr)
		}
	}

	// A run holds its state directory: a second one is refused.
	cmd := exec.Command(bin, "run", "--state", "busy", "--output", "plain", "sleep.yaml")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for i := 0; ; i++ {
		if _, err := os.Stat(filepath.Join(dir, "started")); err == nil {
			break
		}
		if i > 500 {
			t.Fatal("the first run did not start its task")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, stderr, code := sf(t, bin, dir, "", "run", "--state", "busy", "--output", "plain", "ok.yaml")
	if code != 2 || !strings.Contains(stderr, "in use by pid") {
		t.Errorf("second run on a busy state: exit %d, want 2 and who holds it\n%s", code, stderr)
	}
}
