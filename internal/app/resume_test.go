package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// resume reaches the hosts as the run did (known_hosts, host key check,
// how the password came), never saves a password, and says when the plan
// file changed since the run.
func TestResumeReusesConnectionAndNotesPlanChange(t *testing.T) {
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.yaml")
	flag := filepath.Join(dir, "ok")
	plan := "name: p\nhosts: {groups: {g: [{name: h, address: local}]}}\nsteps:\n  - {id: a, kind: shell, with: {run: 'test -e " + flag + "'}}\n"
	if err := os.WriteFile(planFile, []byte(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	var stderr bytes.Buffer
	streams := IO{Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}, Stderr: &stderr}
	t.Chdir(dir)
	err := Run(context.Background(), RunOptions{
		ExecOptions: ExecOptions{StateDir: state, Parallel: 1, Output: "plain",
			Connect: ConnectOptions{KnownHosts: "my_known_hosts", HostKeyCheck: "accept-new", Password: "s3cret-pw"}},
		PlanFile: planFile,
	}, streams)
	if Code(err) != ExitFailed {
		t.Fatalf("run: %v, want a failed task", err)
	}
	saved, err := os.ReadFile(filepath.Join(state, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(saved, []byte("s3cret-pw")) {
		t.Fatalf("the password is saved: %s", saved)
	}

	os.WriteFile(flag, nil, 0o644)
	os.WriteFile(planFile, []byte(plan+"  - {id: b, kind: shell, with: {run: 'true'}}\n"), 0o644)
	stderr.Reset()
	err = Resume(context.Background(), ResumeOptions{ExecOptions: ExecOptions{StateDir: state, Parallel: 1, Output: "plain"}}, streams)
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{
		"resume: as the run: --known-hosts " + filepath.Join(dir, "my_known_hosts") + " --host-key-check accept-new",
		"--passwd, which is never saved",
		planFile + " changed since the run; resume runs the plan saved with the run",
		"sealflow run " + planFile + " --state " + state,
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("resume said:\n%s\nwant it to say %q", stderr.String(), want)
		}
	}
}
