package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The report is a snapshot while a run goes on (its task shows running),
// and reads a journal whose last record a crash cut short.
func TestReportDuringARunAndAfterACrash(t *testing.T) {
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.yaml")
	started, release := filepath.Join(dir, "started"), filepath.Join(dir, "release")
	plan := "name: live\nhosts: {groups: {g: [{name: h, address: local}]}}\nsteps:\n" +
		"  - {id: a, kind: shell, with: {run: 'true'}}\n" +
		"  - {id: b, kind: shell, needs: [a], with: {run: 'touch " + started + "; while [ ! -e " + release + " ]; do sleep 0.05; done'}}\n"
	if err := os.WriteFile(planFile, []byte(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	done := make(chan error, 1)
	go func() {
		streams := IO{Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
		done <- Run(context.Background(), RunOptions{
			ExecOptions: ExecOptions{StateDir: state, Parallel: 2, Output: "plain"},
			PlanFile:    planFile,
		}, streams)
	}()
	defer func() {
		os.WriteFile(release, nil, 0o644)
		<-done
	}()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("task b did not start")
		}
	}

	report := func(name string) string {
		t.Helper()
		out := filepath.Join(dir, name)
		var stdout bytes.Buffer
		if err := Report(ReportOptions{StateDir: state, Output: out}, IO{Stdout: &stdout, Stderr: &bytes.Buffer{}}); err != nil {
			t.Fatalf("report: %v", err)
		}
		if !strings.Contains(stdout.String(), out) {
			t.Errorf("report does not say where it wrote: %q", stdout.String())
		}
		page, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return string(page)
	}
	page := report("live.html")
	for _, want := range []string{`data-task="a@h" data-state="done"`, `data-task="b@h" data-state="running"`, "run in progress"} {
		if !strings.Contains(page, want) {
			t.Errorf("report during the run lacks %q", want)
		}
	}

	os.WriteFile(release, nil, 0o644)
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	done <- nil // for the deferred wait
	// A crash in the middle of writing a record leaves half a line.
	f, err := os.OpenFile(filepath.Join(state, "journal"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`1234abcd {"t":"2026-12-01T10:00:00Z","e":"sta`)
	f.Close()
	page = report("after.html")
	for _, want := range []string{`data-task="b@h" data-state="done"`} {
		if !strings.Contains(page, want) {
			t.Errorf("report after the run lacks %q", want)
		}
	}
	if strings.Contains(page, "run in progress") {
		t.Errorf("report after the run says it is in progress")
	}
}

func TestReportRefusesWhatIsNoRun(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o700)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	for _, c := range []struct{ state, says string }{
		{filepath.Join(dir, "missing"), "no state directory"},
		{empty, "records no task yet"},
		{file, "is not a directory"},
	} {
		err := Report(ReportOptions{StateDir: c.state, Output: filepath.Join(dir, "out.html")}, IO{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}})
		if Code(err) != ExitInvalid || err == nil || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), "sealflow run") && c.state != file {
			t.Errorf("report --state %s: %v (exit %d), want exit 2 saying %q and what to run", c.state, err, Code(err), c.says)
		}
		if _, err := os.Stat(filepath.Join(dir, "out.html")); err == nil {
			t.Errorf("report --state %s wrote a page", c.state)
		}
	}
}
