package main

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/journal"
)

// sealflowBin returns a path that runs this test binary as `sealflow`
// (testscript.Main dispatches on the program name).
func sealflowBin(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "sealflow")
	if err := os.Symlink(self, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// killPlan is a chain of steps on four local hosts with a cross-host
// barrier; every task checks the outputs it was given, so a lost or wrong
// output fails the run.
// With local true the plan has four local hosts in group g; otherwise the
// inventory comes from -i and must have a group g.
func killPlan(ranFile string, local bool) string {
	var b strings.Builder
	b.WriteString("name: kill\n")
	if local {
		b.WriteString("hosts:\n  groups:\n    g: [{name: h1, address: local}, {name: h2, address: local}, {name: h3, address: local}, {name: h4, address: local}]\n")
	}
	b.WriteString("steps:\n")
	prev := ""
	for i := 1; i <= 6; i++ {
		id := fmt.Sprintf("s%d", i)
		on := "g"
		if i == 4 {
			on = "g[0]" // the others wait for it: a barrier
		}
		check := "true"
		needs := ""
		if prev != "" {
			needs = fmt.Sprintf("    needs: [%s]\n", prev)
			check = fmt.Sprintf(`test "${{ steps.%s.outputs.v }}" = "%s-$SEALFLOW_HOST" || test "${{ steps.%s.outputs.v }}" = "%s-${{ groups.g[0].name }}"`, prev, prev, prev, prev)
		}
		fmt.Fprintf(&b, "  - id: %s\n    kind: shell\n    on: %s\n%s    with:\n      run: |\n        %s\n        echo \"$SEALFLOW_STEP@$SEALFLOW_HOST\" >> %s\n        sleep 0.$(( 1 + $(od -An -N1 -tu1 /dev/urandom) %% 3 ))\n        echo \"v=$SEALFLOW_STEP-$SEALFLOW_HOST\" >> \"$SEALFLOW_OUTPUT\"\n",
			id, on, needs, check, ranFile)
		prev = id
	}
	return b.String()
}

// TestSIGKILLAndResume kills the real sealflow process with SIGKILL at
// many points of a run and resumes until the run completes. A task
// journaled as done never starts again, and every output reaches the
// tasks after it.
func TestSIGKILLAndResume(t *testing.T) {
	dir := t.TempDir()
	plan := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(plan, []byte(killPlan(filepath.Join(dir, "ran"), true)), 0o644); err != nil {
		t.Fatal(err)
	}
	killAndResume(t, dir, plan, nil, nil)
}

// killAndResume runs plan, SIGKILLs sealflow at random points, resumes
// until the run completes, and checks the journal.
func killAndResume(t *testing.T, dir, plan string, runArgs, resumeArgs []string) {
	bin := sealflowBin(t)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	state := filepath.Join(dir, "state")
	rerunRE := regexp.MustCompile(`--rerun (\S+)`)

	var rerun []string
	kills, finished := 0, false
	const wantKills = 20
	for i := 0; i < 200 && !finished; i++ {
		args := append([]string{"resume", "--state", state, "--output", "plain"}, resumeArgs...)
		// Until a run got as far as saving its plan, there is nothing to
		// resume: start it again.
		if _, err := os.Stat(filepath.Join(state, "plan.yaml")); err != nil {
			args = append(append([]string{"run", "--state", state, "--output", "plain"}, runArgs...), plan)
		}
		for _, r := range rerun {
			args = append(args, "--rerun", r)
		}
		var stderr bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		// Kill at a random point until enough kills happened, then let
		// the run finish.
		kill := time.After(time.Duration(10+rng.Intn(300)) * time.Millisecond)
		if kills >= wantKills {
			kill = nil
		}
		var err error
		select {
		case err = <-waited:
		case <-kill:
			cmd.Process.Signal(syscall.SIGKILL)
			err = <-waited
			kills++
		}
		rerun = nil
		code := cmd.ProcessState.ExitCode()
		switch {
		case err == nil:
			finished = true
		case code == 2:
			// An interrupted task that is not safe to re-run: decide it.
			for _, m := range rerunRE.FindAllStringSubmatch(stderr.String(), -1) {
				rerun = append(rerun, strings.Split(m[1], ",")...)
			}
			if len(rerun) == 0 {
				t.Fatalf("resume refused without naming a task: %s", stderr.String())
			}
		case code == 1:
			t.Fatalf("a task failed (lost or wrong outputs?): %s", stderr.String())
		}
	}
	if !finished {
		t.Fatalf("the run did not complete after %d kills", kills)
	}
	t.Logf("%d kills", kills)

	rd, err := journal.ReadOnly(state)
	if err != nil {
		t.Fatal(err)
	}
	records, err := rd.Replay()
	if err != nil {
		t.Fatal(err)
	}
	done := map[string]bool{}
	for _, r := range records {
		id := r.Step + "@" + r.Host
		switch r.Event {
		case journal.Started:
			if done[id] {
				t.Errorf("%s started again after it was journaled done", id)
			}
		case journal.Done:
			done[id] = true
		}
	}
	if len(done) != 4*5+1 {
		t.Errorf("%d tasks done, want 21", len(done))
	}
}
