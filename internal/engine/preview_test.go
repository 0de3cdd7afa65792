package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/internal/journal"
)

func (f *fixture) preview(rerun, skip []TaskID) map[string]Decision {
	f.t.Helper()
	var records []journal.Record
	if _, err := os.Stat(f.state); err == nil {
		rd, err := journal.ReadOnly(f.state)
		if err != nil {
			f.t.Fatal(err)
		}
		if records, err = rd.Replay(); err != nil {
			f.t.Fatal(err)
		}
	}
	pvs, err := Preview(f.load(), records, rerun, skip)
	if err != nil {
		f.t.Fatalf("preview: %v", err)
	}
	out := map[string]Decision{}
	for _, pv := range pvs {
		out[pv.ID.String()] = pv.Verdict.Decision
		if pv.Verdict.Decision != DecideSkip && len(pv.Describe) == 0 {
			f.t.Errorf("%s: no description", pv.ID)
		}
		if pv.ID.Step == "a" && (len(pv.Describe) != 1 || !strings.HasPrefix(pv.Describe[0], `sh -e: echo "v=`)) {
			f.t.Errorf("%s: describe %q, want the shell step's own text", pv.ID, pv.Describe)
		}
	}
	return out
}

// runs maps a run's statuses to the decision they show.
func runs(r *Result) map[string]Decision {
	out := map[string]Decision{}
	for _, t := range r.Tasks {
		switch t.Status {
		case StatusCached:
			out[t.ID.String()] = DecideUnchanged
		case StatusSkipped:
			out[t.ID.String()] = DecideSkip
		default:
			out[t.ID.String()] = DecideRun // ran (done or failed)
		}
	}
	return out
}

// ran folds run and re-run: a run does not tell them apart.
func ran(m map[string]Decision) map[string]Decision {
	out := map[string]Decision{}
	for k, v := range m {
		if v == DecideRerun {
			v = DecideRun
		}
		out[k] = v
	}
	return out
}

// Preview (what `sealflow plan` prints) tells what the next run does,
// after a failure, after a fix and after a change of the plan.
func TestPreviewTellsWhatTheRunDoes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, twoHosts+`
steps:
  - id: a
    kind: shell
    on: web
    with: {run: 'echo "v=$SEALFLOW_HOST" >> $SEALFLOW_OUTPUT'}
  - id: b
    kind: shell
    on: web
    needs: [a]
    with: {run: 'test -e ${DIR}/fixed-$SEALFLOW_HOST; echo "${{ steps.a.outputs.v }}"'}
  - id: c
    kind: shell
    on: web
    needs: [b]
    when: 'host.name == "h1"'
    with: {run: 'true'}
`)
	want := map[string]Decision{"a@h1": DecideRun, "a@h2": DecideRun, "b@h1": DecideRun, "b@h2": DecideRun, "c@h1": DecideRun, "c@h2": DecideSkip}
	if diff := cmp.Diff(want, f.preview(nil, nil)); diff != "" {
		t.Errorf("before any run (-want +got):\n%s", diff)
	}
	os.WriteFile(filepath.Join(f.dir, "fixed-h1"), nil, 0o644)
	f.mustRun(func(o *Options) { o.KeepGoing = true })

	want = map[string]Decision{"a@h1": DecideUnchanged, "a@h2": DecideUnchanged, "b@h1": DecideUnchanged, "b@h2": DecideRerun, "c@h1": DecideUnchanged, "c@h2": DecideSkip}
	got := f.preview(nil, nil)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after b@h2 failed (-want +got):\n%s", diff)
	}
	os.WriteFile(filepath.Join(f.dir, "fixed-h2"), nil, 0o644)
	if diff := cmp.Diff(ran(got), runs(f.mustRun(nil))); diff != "" {
		t.Errorf("the run after the fix did otherwise than previewed (-preview +run):\n%s", diff)
	}

	// --rerun a@h1: it gives the same output again, so b@h1 stays
	// unchanged (the preview cannot know the output: it says so).
	want = map[string]Decision{"a@h1": DecideRerun, "a@h2": DecideUnchanged, "b@h1": DecideUnchanged, "b@h2": DecideUnchanged, "c@h1": DecideUnchanged, "c@h2": DecideSkip}
	rerun := []TaskID{{"a", "h1"}}
	got = f.preview(rerun, nil)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("with --rerun a@h1 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ran(got), runs(f.mustRun(func(o *Options) { o.Rerun = rerun }))); diff != "" {
		t.Errorf("the run with --rerun a@h1 did otherwise than previewed (-preview +run):\n%s", diff)
	}

	f.plan = strings.Replace(f.plan, `echo "v=$SEALFLOW_HOST"`, `echo "v=new-$SEALFLOW_HOST"`, 1)
	want = map[string]Decision{"a@h1": DecideRerun, "a@h2": DecideRerun, "b@h1": DecideRerun, "b@h2": DecideRerun, "c@h1": DecideRerun, "c@h2": DecideSkip}
	got = f.preview(nil, nil)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after a changed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ran(got), runs(f.mustRun(nil))); diff != "" {
		t.Errorf("the run after the change did otherwise than previewed (-preview +run):\n%s", diff)
	}
}

func TestPreviewAsksForAnInterruptedTaskAsTheRunWould(t *testing.T) {
	t.Parallel()
	f := newFixture(t, manyHosts(1)+`
steps:
  - id: once
    kind: shell
    with: {run: 'echo x >> ${DIR}/once'}
  - id: safe
    kind: shell
    with: {run: 'echo x >> ${DIR}/safe', rerunnable: true}
`)
	f.writeInterrupted("once", "h1")
	f.writeInterrupted("safe", "h1")
	want := map[string]Decision{"once@h1": DecideAsk, "safe@h1": DecideRerun}
	if diff := cmp.Diff(want, f.preview(nil, nil)); diff != "" {
		t.Errorf("interrupted tasks (-want +got):\n%s", diff)
	}
	if _, err := f.run(nil); err == nil || !strings.Contains(err.Error(), "--rerun once@h1") {
		t.Errorf("the run did not ask about once@h1: %v", err)
	}
	want = map[string]Decision{"once@h1": DecideSkip, "safe@h1": DecideRerun}
	if diff := cmp.Diff(want, f.preview(nil, []TaskID{{"once", "h1"}})); diff != "" {
		t.Errorf("with --skip once@h1 (-want +got):\n%s", diff)
	}
}
