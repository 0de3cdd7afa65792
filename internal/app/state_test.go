package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stateFixture is a plan of local tasks and a state directory.
type stateFixture struct {
	t       *testing.T
	dir     string
	plan    string
	state   string
	streams IO
	stderr  *bytes.Buffer
}

func newStateFixture(t *testing.T) *stateFixture {
	t.Helper()
	dir := t.TempDir()
	plan := filepath.Join(dir, "plan.yaml")
	text := "name: p\nhosts: {groups: {g: [{name: h, address: local}]}}\nsteps:\n" +
		"  - {id: gen, kind: shell, with: {run: 'echo tok=s3cr3t-value >>\"$SEALFLOW_OUTPUT\"; echo x >>" + filepath.Join(dir, "ran") + "', secret_outputs: [tok]}}\n" +
		"  - {id: b, kind: shell, needs: [gen], with: {run: 'true'}}\n"
	if err := os.WriteFile(plan, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	stderr := &bytes.Buffer{}
	return &stateFixture{t: t, dir: dir, plan: plan, state: filepath.Join(dir, "state"), stderr: stderr,
		streams: IO{Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}, Stderr: stderr}}
}

func (f *stateFixture) run(mod func(*RunOptions)) error {
	f.t.Helper()
	o := RunOptions{ExecOptions: ExecOptions{StateDir: f.state, Parallel: 1, Output: "plain"}, PlanFile: f.plan}
	if mod != nil {
		mod(&o)
	}
	f.stderr.Reset()
	return Run(context.Background(), o, f.streams)
}

func (f *stateFixture) resume() error {
	f.t.Helper()
	f.stderr.Reset()
	return Resume(context.Background(), ResumeOptions{ExecOptions: ExecOptions{StateDir: f.state, Parallel: 1, Output: "plain"}}, f.streams)
}

// ranTimes is how often the gen task ran on the host.
func (f *stateFixture) ranTimes() int {
	b, _ := os.ReadFile(filepath.Join(f.dir, "ran"))
	return strings.Count(string(b), "x")
}

// snapshot returns every file of the state directory and its content.
func (f *stateFixture) snapshot() map[string]string {
	f.t.Helper()
	out := map[string]string{}
	filepath.Walk(f.state, func(path string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && filepath.Base(path) != "lock" {
			b, _ := os.ReadFile(path)
			out[strings.TrimPrefix(path, f.state)] = string(b)
		}
		return nil
	})
	return out
}

// A refused command changes nothing: `run --fresh` with a bad flag value
// keeps the earlier run; a run or resume refused in a new state directory
// leaves no directory.
func TestRefusedCommandsLeaveStateAlone(t *testing.T) {
	f := newStateFixture(t)
	if err := f.run(nil); err != nil {
		t.Fatalf("first run: %v", err)
	}
	before := f.snapshot()
	for _, tc := range []struct {
		name string
		mod  func(*RunOptions)
	}{
		{"--fresh --limit ghost", func(o *RunOptions) { o.Fresh = true; o.Limit = []string{"ghost"} }},
		{"--fresh --rerun nonsense", func(o *RunOptions) { o.Fresh = true; o.Rerun = []string{"nonsense"} }},
		{"--fresh --skip of no task", func(o *RunOptions) { o.Fresh = true; o.Skip = []string{"nope@h"} }},
		{"--fresh --host-key-check bad", func(o *RunOptions) { o.Fresh = true; o.Connect.HostKeyCheck = "sometimes" }},
		{"--limit ghost", func(o *RunOptions) { o.Limit = []string{"ghost"} }},
		{"--set of a bad pair", func(o *RunOptions) { o.Fresh = true; o.Set = []string{"novalue"} }},
	} {
		err := f.run(tc.mod)
		if Code(err) != ExitInvalid {
			t.Errorf("%s: %v (exit %d), want exit 2", tc.name, err, Code(err))
		}
		if strings.Contains(f.stderr.String(), "discarded") {
			t.Errorf("%s: says it discarded the run: %s", tc.name, f.stderr.String())
		}
		if d := diffMaps(before, f.snapshot()); d != "" {
			t.Errorf("%s changed the state directory: %s", tc.name, d)
		}
	}
	// The earlier run is intact: nothing runs again.
	if err := f.run(nil); err != nil || f.ranTimes() != 1 {
		t.Errorf("run after the refusals: %v, gen ran %d times, want 1", err, f.ranTimes())
	}

	fresh := filepath.Join(f.dir, "new-state")
	for _, tc := range []struct {
		name string
		do   func() error
	}{
		{"run --limit ghost", func() error {
			return Run(context.Background(), RunOptions{ExecOptions: ExecOptions{StateDir: fresh, Limit: []string{"ghost"}}, PlanFile: f.plan}, f.streams)
		}},
		{"run --fresh --rerun of no task", func() error {
			return Run(context.Background(), RunOptions{ExecOptions: ExecOptions{StateDir: fresh, Rerun: []string{"x@y"}}, PlanFile: f.plan, Fresh: true}, f.streams)
		}},
		{"resume", func() error {
			return Resume(context.Background(), ResumeOptions{ExecOptions: ExecOptions{StateDir: fresh}}, f.streams)
		}},
	} {
		if err := tc.do(); Code(err) != ExitInvalid {
			t.Errorf("%s in a new state directory: %v, want exit 2", tc.name, err)
		}
		if _, err := os.Stat(fresh); err == nil {
			t.Errorf("%s left a state directory %s", tc.name, fresh)
			os.RemoveAll(fresh)
		}
	}
}

func diffMaps(a, b map[string]string) string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			out = append(out, k+" removed")
		} else if w != v {
			out = append(out, k+" changed")
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k+" added")
		}
	}
	return strings.Join(out, ", ")
}

// A journal emptied or deleted while the run's files and logs are there:
// run and resume refuse, naming the state directory and --fresh; nothing
// runs again. --fresh starts over.
func TestLostJournalRefused(t *testing.T) {
	for _, lose := range []string{"truncate", "delete"} {
		t.Run(lose, func(t *testing.T) {
			f := newStateFixture(t)
			if err := f.run(nil); err != nil {
				t.Fatalf("first run: %v", err)
			}
			j := filepath.Join(f.state, "journal")
			if lose == "truncate" {
				os.Truncate(j, 0)
			} else {
				os.Remove(j)
			}
			for name, do := range map[string]func() error{"run": func() error { return f.run(nil) }, "resume": f.resume} {
				err := do()
				if Code(err) != ExitInvalid || !strings.Contains(err.Error(), f.state) || !strings.Contains(err.Error(), "--fresh") {
					t.Errorf("%s on a lost journal: %v, want exit 2 naming %s and --fresh", name, err, f.state)
				}
			}
			if n := f.ranTimes(); n != 1 {
				t.Errorf("gen ran %d times, want 1", n)
			}
			if err := f.run(func(o *RunOptions) { o.Fresh = true }); err != nil || f.ranTimes() != 2 {
				t.Errorf("run --fresh: %v, gen ran %d times, want 2", err, f.ranTimes())
			}
		})
	}
}

// A deleted key file: the error says the key is missing and what it
// protects, and no new key replaces it silently; --fresh starts over with
// a new key. Without secrets in the journal a new key is simply made.
func TestMissingKeyIsNamed(t *testing.T) {
	f := newStateFixture(t)
	if err := f.run(nil); err != nil {
		t.Fatalf("first run: %v", err)
	}
	key := filepath.Join(f.state, "key")
	os.Remove(key)
	for name, do := range map[string]func() error{"run": func() error { return f.run(nil) }, "resume": f.resume} {
		err := do()
		if err == nil || !strings.Contains(err.Error(), key+" is missing") || !strings.Contains(err.Error(), "secret outputs") ||
			!strings.Contains(err.Error(), "SEALFLOW_STATE_KEY") || strings.Contains(err.Error(), "does not match") {
			t.Errorf("%s without the key: %v, want it to say the key is missing and what it protects", name, err)
		}
		if _, err := os.Stat(key); err == nil {
			t.Errorf("%s made a new key", name)
			os.Remove(key)
		}
	}
	if err := f.run(func(o *RunOptions) { o.Fresh = true }); err != nil {
		t.Fatalf("run --fresh without the key: %v", err)
	}
	if _, err := os.Stat(key); err != nil {
		t.Errorf("--fresh made no new key: %v", err)
	}
	if err := f.resume(); err != nil {
		t.Errorf("resume after --fresh: %v", err)
	}

	// A journal without secrets: a lost key loses nothing.
	g := newStateFixture(t)
	os.WriteFile(g.plan, []byte("name: p\nhosts: {groups: {g: [{name: h, address: local}]}}\nsteps:\n  - {id: a, kind: shell, with: {run: 'true'}}\n"), 0o644)
	if err := g.run(nil); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(g.state, "key"))
	if err := g.resume(); err != nil {
		t.Errorf("resume of a journal without secrets, key deleted: %v", err)
	}
}
