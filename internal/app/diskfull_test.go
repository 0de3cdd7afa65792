package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sealflow/sealflow/internal/redact"
)

// mountTmpfs mounts a tmpfs of size on dir (created) until the test ends.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("sealflow-test", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+size+",mode=0700"); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

func writePlan(t *testing.T, dir, text string) string {
	t.Helper()
	p := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A task log that fills its disk: the task's outcome is what its command
// did (done, its outputs passed on), and the run says the log is
// incomplete, with the reason, as the task ends and in the summary.
func TestFullDiskTaskLogIsReported(t *testing.T) {
	dir := t.TempDir()
	after := filepath.Join(dir, "after")
	plan := writePlan(t, dir, "name: p\nhosts: {groups: {g: [{name: h, address: local}]}}\nsteps:\n"+
		"  - {id: loud, kind: shell, with: {run: 'i=0; while [ $i -lt 4000 ]; do echo line $i of a task that prints a lot, more than its disk holds; i=$((i+1)); done; echo k=v >>\"$SEALFLOW_OUTPUT\"'}}\n"+
		"  - {id: after, kind: shell, needs: [loud], with: {run: 'echo \"${{ steps.loud.outputs.k }}\" >"+after+"'}}\n"+
		"  - {id: secretive, kind: shell, with: {secret_outputs: [tok], run: 'echo the token is s3cr3t-value-4711; i=0; while [ $i -lt 4000 ]; do echo filler line $i of a task that prints a lot; i=$((i+1)); done; echo tok=s3cr3t-value-4711 >>\"$SEALFLOW_OUTPUT\"'}}\n")
	for _, mode := range []string{"plain", "json"} {
		t.Run(mode, func(t *testing.T) {
			os.Remove(after)
			// The loud task's log directory is a disk of 64 KiB; the
			// journal has room.
			state := filepath.Join(dir, "state-"+mode)
			mountTmpfs(t, filepath.Join(state, "logs", "loud"), "64k")
			mountTmpfs(t, filepath.Join(state, "logs", "secretive"), "16k")
			var stdout, stderr bytes.Buffer
			o := RunOptions{ExecOptions: ExecOptions{StateDir: state, Parallel: 1, Output: mode}, PlanFile: plan}
			err := Run(context.Background(), o, IO{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr})
			if err != nil {
				t.Fatalf("run: %v (the tasks' commands succeeded)\n%s%s", err, stdout.String(), stderr.String())
			}
			if b, err := os.ReadFile(after); err != nil || string(b) != "v\n" {
				t.Errorf("the task after the loud one wrote %q (%v), want its output v", b, err)
			}
			out := stdout.String()
			warning := "log of loud@h is incomplete: no space left on device"
			if n := strings.Count(out, warning); n != 2 {
				t.Errorf("the output names the incomplete log %d times, want 2 (as the task ends and in the summary):\n%s", n, out)
			}
			if mode == "plain" && !strings.Contains(out, "warnings:\n  "+warning+"\n") {
				t.Errorf("the summary has no warning line for the log:\n%s", out)
			}
			if mode == "json" && !strings.Contains(out, `"type":"task-warning"`) {
				t.Errorf("no task-warning event:\n%s", out)
			}
			if strings.Contains(out, "log of after@h") {
				t.Errorf("a complete log is reported incomplete:\n%s", out)
			}
			// A secret output learned at the end is hidden in the full log
			// all the same (no room for a rewritten copy).
			sl, err := os.ReadFile(filepath.Join(state, "logs", "secretive", "h.log"))
			if err != nil || strings.Contains(string(sl), "s3cr3t-value-4711") || !strings.Contains(string(sl), "the token is "+redact.Marker) {
				t.Errorf("the secretive task's log (%v) shows its secret, or not the line redacted:\n%.300s", err, sl)
			}
			if !strings.Contains(out, "log of secretive@h is incomplete: no space left on device") {
				t.Errorf("no warning for the secretive task's log:\n%s", out)
			}
			b, err := os.ReadFile(filepath.Join(state, "logs", "loud", "h.log"))
			if err != nil || !strings.HasPrefix(string(b), "=== loud@h attempt 1") || !strings.Contains(string(b), "line 0 of") {
				t.Errorf("the log holds %d bytes (%v), want its beginning", len(b), err)
			}
		})
	}
}

// A journal that cannot be written (its disk full) fails the run, saying
// so, even when every task's command succeeded: resume would not know of
// them.
func TestFullDiskJournalFailsTheRun(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	mountTmpfs(t, state, "256k")
	// The task fills the state's disk, then prints an output of 16 KiB:
	// its done record needs pages the disk no longer has.
	plan := writePlan(t, dir, "name: p\nhosts: {groups: {g: [{name: h, address: local}]}}\nsteps:\n"+
		"  - {id: fill, kind: shell, with: {run: 'head -c 1048576 /dev/zero >"+filepath.Join(state, "filler")+" || true; v=$(head -c 16384 /dev/zero | tr \"\\\\0\" x); echo big=$v >>\"$SEALFLOW_OUTPUT\"'}}\n")
	var stdout, stderr bytes.Buffer
	o := RunOptions{ExecOptions: ExecOptions{StateDir: state, Parallel: 1, Output: "plain"}, PlanFile: plan}
	err := Run(context.Background(), o, IO{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr})
	if err == nil {
		t.Fatalf("the run succeeded with a journal it could not write:\n%s", stdout.String())
	}
	for _, want := range []string{"journal could not be written", "no space left on device", "sealflow resume"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
