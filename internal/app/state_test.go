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

// Secret vars ({secret: true}, from --set or {env: NAME}) never reach the
// state directory in clear (vars.json, journal, logs), yet resume has
// them: the --set value sealed with the state key, the environment read
// again. Without a value, run and resume refuse, saying how to give it.
func TestSecretVarsNeverInClear(t *testing.T) {
	const pw, tok = "pw-Very-Secret-1", "tok-From-Env-2"
	dir := t.TempDir()
	flag := filepath.Join(dir, "go-on")
	plan := filepath.Join(dir, "plan.yaml")
	os.WriteFile(plan, []byte(`name: p
vars:
  pw: {secret: true}
  tok: {secret: true, env: SF_TEST_TOK}
  plain: hello
hosts: {groups: {g: [{name: h, address: local}]}}
steps:
  - id: use
    kind: shell
    with:
      run: |
        echo "pw is ${{ vars.pw }} and tok is $TOK"
        echo "derived=x-${{ vars.pw }}-y" >> "$SEALFLOW_OUTPUT"
        echo "plain=${{ vars.plain }}" >> "$SEALFLOW_OUTPUT"
      env: {TOK: '${{ vars.tok }}'}
  - id: later
    kind: shell
    needs: [use]
    with:
      run: |
        test -e `+flag+`
        printf '%s %s' "${{ steps.use.outputs.derived }}" "${{ vars.tok }}" > `+filepath.Join(dir, "got")+`
`), 0o644)
	state := filepath.Join(dir, "state")
	var out bytes.Buffer
	streams := IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out}
	run := func(set ...string) error {
		out.Reset()
		return Run(context.Background(), RunOptions{ExecOptions: ExecOptions{StateDir: state, Output: "plain"}, PlanFile: plan, Set: set}, streams)
	}
	resume := func() error {
		out.Reset()
		return Resume(context.Background(), ResumeOptions{ExecOptions: ExecOptions{StateDir: state, Output: "plain"}}, streams)
	}

	t.Setenv("SF_TEST_TOK", "")
	os.Unsetenv("SF_TEST_TOK")
	if err := run(); Code(err) != ExitInvalid || !strings.Contains(err.Error(), "var pw is secret and has no value: give it with --set pw=VALUE") ||
		!strings.Contains(err.Error(), "$SF_TEST_TOK") {
		t.Fatalf("run without the secrets: %v, want exit 2 saying how to give pw and tok", err)
	}
	os.Setenv("SF_TEST_TOK", tok)
	if err := run("pw=" + pw); Code(err) != ExitFailed {
		t.Fatalf("run: %v (want the later task to fail)\n%s", err, out.String())
	}
	if strings.Contains(out.String(), pw) || strings.Contains(out.String(), tok) {
		t.Errorf("the output shows a secret:\n%s", out.String())
	}
	checkNoClear := func(when string) {
		t.Helper()
		filepath.Walk(state, func(path string, info os.FileInfo, err error) error {
			if err != nil || !info.Mode().IsRegular() {
				return nil
			}
			b, _ := os.ReadFile(path)
			for _, s := range []string{pw, tok} {
				if strings.Contains(string(b), s) {
					t.Errorf("%s: %s holds the secret %q in clear", when, path, s)
				}
			}
			return nil
		})
	}
	checkNoClear("after the run")
	if log, _ := os.ReadFile(filepath.Join(state, "logs", "use", "h.log")); !strings.Contains(string(log), "pw is [redacted] and tok is [redacted]") {
		t.Errorf("the log does not show the vars redacted:\n%s", log)
	}
	if j, _ := os.ReadFile(filepath.Join(state, "journal")); !strings.Contains(string(j), "hello") {
		t.Errorf("a plain output is not in the journal in clear:\n%s", j)
	}

	os.WriteFile(flag, nil, 0o644)
	os.Unsetenv("SF_TEST_TOK")
	if err := resume(); Code(err) != ExitInvalid || !strings.Contains(err.Error(), "$SF_TEST_TOK") {
		t.Errorf("resume without $SF_TEST_TOK: %v, want exit 2 naming it", err)
	}
	os.Setenv("SF_TEST_TOK", tok)
	if err := resume(); err != nil {
		t.Fatalf("resume: %v\n%s", err, out.String())
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "got")); string(got) != "x-"+pw+"-y "+tok {
		t.Errorf("after resume the later step got %q, want the secret values", got)
	}
	checkNoClear("after resume")
}
