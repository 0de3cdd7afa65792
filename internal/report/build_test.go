package report

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/internal/journal"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// fakeJournal writes the records a run would, at times given as offsets
// from t0.
type fakeJournal struct {
	run     int
	records []journal.Record
}

func (j *fakeJournal) at(d time.Duration) time.Time { return t0.Add(d) }

func (j *fakeJournal) startRun(at time.Duration) {
	j.run++
	j.records = append(j.records, journal.Record{Time: j.at(at), Event: journal.RunStarted, Run: j.run, Note: "demo"})
}

func (j *fakeJournal) add(ev journal.Event, task string, attempt int, at time.Duration, mods ...func(*journal.Record)) {
	step, host, _ := strings.Cut(task, "@")
	r := journal.Record{Time: j.at(at), Event: ev, Run: j.run, Step: step, Host: host, Attempt: attempt}
	for _, m := range mods {
		m(&r)
	}
	j.records = append(j.records, r)
}

// task journals one task that starts at from and ends at to as ev.
func (j *fakeJournal) task(task string, from, to time.Duration, ev journal.Event, mods ...func(*journal.Record)) {
	j.add(journal.Started, task, 1, from)
	j.add(ev, task, 1, to, append(mods, func(r *journal.Record) { r.Duration = to - from })...)
}

func withErr(msg string) func(*journal.Record) { return func(r *journal.Record) { r.Error = msg } }

// chainPlan: a on h1,h2; b needs a on h1,h2 (same host); c needs b on h1;
// d on h3 needs a, which does not run on h3, so it waits for every a.
func chainPlan() *Plan {
	k := func(s string) TaskKey { st, h, _ := strings.Cut(s, "@"); return TaskKey{st, h} }
	return &Plan{
		Name: "demo",
		Steps: []Step{
			{ID: "a", Kind: "shell", Hosts: []string{"h1", "h2"}},
			{ID: "b", Kind: "shell", Needs: []string{"a"}, Hosts: []string{"h1", "h2"}},
			{ID: "c", Kind: "shell", Needs: []string{"b"}, Hosts: []string{"h1"}},
			{ID: "d", Kind: "shell", Needs: []string{"a"}, Hosts: []string{"h3"}},
		},
		Groups: []Group{{Name: "masters", Hosts: []string{"h1"}}, {Name: "workers", Hosts: []string{"h2", "h3"}}},
		Upstream: map[TaskKey][]TaskKey{
			k("b@h1"): {k("a@h1")},
			k("b@h2"): {k("a@h2")},
			k("c@h1"): {k("b@h1")},
			k("d@h3"): {k("a@h1"), k("a@h2")},
		},
	}
}

func keys(bars []*Bar) []string {
	var out []string
	for _, b := range bars {
		out = append(out, b.Task.String())
	}
	return out
}

func TestCriticalPathFollowsNeedsByActualDurations(t *testing.T) {
	t.Parallel()
	j := &fakeJournal{}
	j.startRun(0)
	j.task("a@h1", 0, 1*time.Second, journal.Done)
	j.task("a@h2", 0, 5*time.Second, journal.Done)
	j.task("b@h1", 1*time.Second, 2*time.Second, journal.Done)
	j.task("c@h1", 2*time.Second, 6*time.Second, journal.Done) // a@h1+b@h1+c@h1 = 6s
	j.task("b@h2", 5*time.Second, 6*time.Second, journal.Done)
	j.task("d@h3", 5*time.Second, 7*time.Second, journal.Done) // a@h2+d@h3 = 7s: the longest
	rep := Build(Input{Records: j.records, Plan: chainPlan(), Now: t0.Add(time.Minute)})

	if diff := cmp.Diff([]string{"a@h2", "d@h3"}, keys(rep.Critical)); diff != "" {
		t.Errorf("critical path (-want +got):\n%s", diff)
	}
	if rep.CriticalTotal != 7*time.Second {
		t.Errorf("critical path length = %s, want 7s", rep.CriticalTotal)
	}
	marked := map[string]bool{}
	for _, g := range rep.Runs[0].Groups {
		for _, r := range g.Rows {
			for _, b := range r.Bars {
				marked[b.Task.String()] = b.Critical
			}
		}
	}
	want := map[string]bool{"a@h1": false, "a@h2": true, "b@h1": false, "b@h2": false, "c@h1": false, "d@h3": true}
	if diff := cmp.Diff(want, marked); diff != "" {
		t.Errorf("bars outlined as critical (-want +got):\n%s", diff)
	}
	crit := map[string]bool{}
	for _, n := range rep.Graph.Nodes {
		crit[n.Step.ID] = n.Critical
	}
	if diff := cmp.Diff(map[string]bool{"a": true, "b": false, "c": false, "d": true}, crit); diff != "" {
		t.Errorf("steps outlined in the graph (-want +got):\n%s", diff)
	}
}

func TestCriticalPathOfAResumeCountsOnlyWhatRanThen(t *testing.T) {
	t.Parallel()
	j := &fakeJournal{}
	j.startRun(0)
	j.task("a@h1", 0, 10*time.Second, journal.Done)
	j.task("a@h2", 0, 1*time.Second, journal.Done)
	j.task("b@h1", 10*time.Second, 11*time.Second, journal.Failed, withErr("exit status 1"))
	j.startRun(time.Hour)
	// The resume runs b@h1 and c@h1 only; a@h1 (10s, run 1) weighs nothing now.
	j.task("b@h1", time.Hour, time.Hour+time.Second, journal.Done)
	j.task("c@h1", time.Hour+time.Second, time.Hour+3*time.Second, journal.Done)
	rep := Build(Input{Records: j.records, Plan: chainPlan(), Now: t0.Add(2 * time.Hour)})
	if rep.CriticalRun != 2 {
		t.Errorf("critical path of run %d, want the last run (2)", rep.CriticalRun)
	}
	if diff := cmp.Diff([]string{"b@h1", "c@h1"}, keys(rep.Critical)); diff != "" {
		t.Errorf("critical path (-want +got):\n%s", diff)
	}
	if rep.CriticalTotal != 3*time.Second {
		t.Errorf("critical path length = %s, want 3s", rep.CriticalTotal)
	}
	if rep.Runs[0].Expanded || !rep.Runs[1].Expanded {
		t.Errorf("run 1 expanded %v, run 2 %v: want the last run that ran tasks open", rep.Runs[0].Expanded, rep.Runs[1].Expanded)
	}
	if got := rep.Runs[0].Bars; got != 3 {
		t.Errorf("run 1 has %d bars, want 3", got)
	}
	if got := rep.Runs[1].Duration(); got != 3*time.Second {
		t.Errorf("run 2 lasted %s, want 3s (its own records, not the hour between runs)", got)
	}
	final := map[string]State{}
	for _, tk := range rep.Tasks {
		final[tk.Key.String()] = tk.State
	}
	want := map[string]State{"a@h1": StateDone, "a@h2": StateDone, "b@h1": StateDone, "b@h2": StatePending, "c@h1": StateDone, "d@h3": StatePending}
	if diff := cmp.Diff(want, final); diff != "" {
		t.Errorf("final task states (-want +got):\n%s", diff)
	}
	if len(rep.Failures) != 0 {
		t.Errorf("failures = %v, want none: b@h1 failed in run 1 but is done since", rep.Failures)
	}
}

func TestRetriedTaskShowsItsAttempts(t *testing.T) {
	t.Parallel()
	j := &fakeJournal{}
	j.startRun(0)
	j.add(journal.Started, "a@h1", 1, 0)
	j.add(journal.Started, "a@h1", 2, 2*time.Second) // attempt 1 failed, retried after a backoff
	j.add(journal.Started, "a@h1", 3, 5*time.Second)
	j.add(journal.Done, "a@h1", 3, 6*time.Second, func(r *journal.Record) { r.Duration = 6 * time.Second })
	rep := Build(Input{Records: j.records, Plan: chainPlan(), Now: t0.Add(time.Minute)})
	b := rep.Runs[0].Groups[0].Rows[0].Bars[0]
	want := []Attempt{
		{No: 1, Start: t0, End: t0.Add(2 * time.Second), State: StateFailed},
		{No: 2, Start: t0.Add(2 * time.Second), End: t0.Add(5 * time.Second), State: StateFailed},
		{No: 3, Start: t0.Add(5 * time.Second), End: t0.Add(6 * time.Second), State: StateDone},
	}
	if diff := cmp.Diff(want, b.Attempts); diff != "" {
		t.Errorf("attempts (-want +got):\n%s", diff)
	}
	if b.State != StateDone || len(b.Retried()) != 2 {
		t.Errorf("bar %s with %d retried attempts, want done with 2", b.State, len(b.Retried()))
	}
	if rep.Tasks[0].Attempts != 3 {
		t.Errorf("task attempts = %d, want 3", rep.Tasks[0].Attempts)
	}
}

func TestSlowestStepsRankByTheirSlowestTask(t *testing.T) {
	t.Parallel()
	j := &fakeJournal{}
	j.startRun(0)
	j.task("a@h1", 0, 2*time.Second, journal.Done)
	j.task("a@h2", 0, 4*time.Second, journal.Done)
	j.task("b@h1", 2*time.Second, 3*time.Second, journal.Done)
	j.task("b@h2", 4*time.Second, 13*time.Second, journal.Failed, withErr("boom"))
	j.task("c@h1", 3*time.Second, 3*time.Second+500*time.Millisecond, journal.Done)
	rep := Build(Input{Records: j.records, Plan: chainPlan(), Now: t0.Add(time.Minute)})
	want := []StepStat{
		{Step: "b", Tasks: 2, Max: 9 * time.Second, Mean: 5 * time.Second, SlowestHost: "h2", Total: 10 * time.Second},
		{Step: "a", Tasks: 2, Max: 4 * time.Second, Mean: 3 * time.Second, SlowestHost: "h2", Total: 6 * time.Second},
		{Step: "c", Tasks: 1, Max: 500 * time.Millisecond, Mean: 500 * time.Millisecond, SlowestHost: "h1", Total: 500 * time.Millisecond},
	}
	if diff := cmp.Diff(want, rep.Slowest); diff != "" {
		t.Errorf("slowest steps (-want +got):\n%s", diff)
	}
}

func TestFailuresCarryTheEndOfTheirLog(t *testing.T) {
	t.Parallel()
	j := &fakeJournal{}
	j.startRun(0)
	j.task("a@h1", 0, time.Second, journal.Done)
	j.task("a@h2", 0, time.Second, journal.Failed, withErr("exit status 2"))
	j.task("d@h3", 0, time.Second, journal.Failed, withErr("context canceled"), func(r *journal.Record) { r.Note = "interrupted" })
	var long bytes.Buffer
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&long, "line %d\n", i)
	}
	logs := map[string][]byte{"a/h2": long.Bytes(), "a/h1": []byte("fine\n")}
	rep := Build(Input{Records: j.records, Plan: chainPlan(), Now: t0.Add(time.Minute),
		Log: func(step, host string) ([]byte, error) {
			if b, ok := logs[step+"/"+host]; ok {
				return b, nil
			}
			return nil, os.ErrNotExist
		}})
	var got []string
	for _, f := range rep.Failures {
		got = append(got, fmt.Sprintf("%s %s %q", f.Key, f.State, f.Error))
	}
	want := []string{`a@h2 failed "exit status 2"`, `d@h3 interrupted "context canceled"`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("failures (-want +got):\n%s", diff)
	}
	lines := strings.Split(rep.Failures[0].LogTail, "\n")
	if len(lines) != LogLines || lines[0] != "line 61" || lines[len(lines)-1] != "line 100" || !rep.Failures[0].LogCut {
		t.Errorf("log tail = %d lines %q .. %q (cut %v), want the last %d lines 61..100, marked cut",
			len(lines), lines[0], lines[len(lines)-1], rep.Failures[0].LogCut, LogLines)
	}
	if rep.Failures[1].LogTail != "" {
		t.Errorf("a task without a log has tail %q", rep.Failures[1].LogTail)
	}
}

func TestManyFailuresAreCapped(t *testing.T) {
	t.Parallel()
	j := &fakeJournal{}
	j.startRun(0)
	for i := 0; i < MaxFailures+7; i++ {
		j.task(fmt.Sprintf("a@w%d", i), 0, time.Second, journal.Failed, withErr("no route to host"))
	}
	rep := Build(Input{Records: j.records, Now: t0.Add(time.Minute)})
	if len(rep.Failures) != MaxFailures || rep.MoreFailures != 7 {
		t.Errorf("%d failures shown and %d more, want %d and 7", len(rep.Failures), rep.MoreFailures, MaxFailures)
	}
}

func TestOpenTaskIsRunningOnlyWhileARunHoldsTheState(t *testing.T) {
	t.Parallel()
	j := &fakeJournal{}
	j.startRun(0)
	j.task("a@h1", 0, time.Second, journal.Done)
	j.add(journal.Started, "b@h1", 1, time.Second)
	now := t0.Add(30 * time.Second)

	live := Build(Input{Records: j.records, Plan: chainPlan(), Now: now, InUse: true})
	b := live.Runs[0].Groups[0].Rows[0].Bars[1]
	if !live.Live || b.State != StateRunning || !b.End.Equal(now) {
		t.Errorf("during a run: live %v, b@h1 %s until %s; want live, running until now (%s)", live.Live, b.State, b.End, now)
	}
	if live.Counts[StateRunning] != 1 {
		t.Errorf("counts during a run = %v, want 1 running", live.Counts)
	}

	j2 := &fakeJournal{records: append([]journal.Record(nil), j.records...), run: j.run}
	j2.startRun(time.Minute) // a new run goes on; b@h1 was left by the one before
	again := Build(Input{Records: j2.records, Plan: chainPlan(), Now: now.Add(time.Minute), InUse: true})
	if st := again.Tasks[2].State; again.Tasks[2].Key.String() != "b@h1" || st != StateInterrupted {
		t.Errorf("%s left started by an earlier run shows %s while a new run goes on, want interrupted", again.Tasks[2].Key, st)
	}

	dead := Build(Input{Records: j.records, Plan: chainPlan(), Now: now})
	b = dead.Runs[0].Groups[0].Rows[0].Bars[1]
	if dead.Live || b.State != StateInterrupted || !b.End.Equal(t0.Add(time.Second)) {
		t.Errorf("after the run died: live %v, b@h1 %s until %s; want interrupted at the last record", dead.Live, b.State, b.End)
	}
	if len(dead.Failures) != 1 || dead.Failures[0].State != StateInterrupted {
		t.Errorf("failures after the run died = %v, want b@h1 interrupted", dead.Failures)
	}
}

func TestBigRunsCollapseGroupsButShowFailures(t *testing.T) {
	t.Parallel()
	p := &Plan{Name: "big", Steps: []Step{{ID: "a", Kind: "shell"}}}
	masters := Group{Name: "masters"}
	workers := Group{Name: "workers"}
	edge := Group{Name: "edge"}
	j := &fakeJournal{}
	j.startRun(0)
	for i := 0; i < 3; i++ {
		masters.Hosts = append(masters.Hosts, fmt.Sprintf("m%d", i))
	}
	for i := 0; i < 490; i++ {
		workers.Hosts = append(workers.Hosts, fmt.Sprintf("w%03d", i))
	}
	edge.Hosts = []string{"e1", "e2", "m0"} // m0 is in masters first
	p.Groups = []Group{masters, workers, edge}
	for _, g := range p.Groups {
		p.Steps[0].Hosts = append(p.Steps[0].Hosts, g.Hosts...)
	}
	for _, h := range append(append(masters.Hosts, workers.Hosts...), "e1", "e2") {
		ev := journal.Done
		if h == "e2" {
			ev = journal.Failed
		}
		j.task("a@"+h, 0, time.Second, ev)
	}
	rep := Build(Input{Records: j.records, Plan: p, Now: t0.Add(time.Minute)})
	var got []string
	for _, g := range rep.Runs[0].Groups {
		var shown []string
		for _, r := range g.Rows {
			if g.Open && len(g.Rows) < 10 {
				shown = append(shown, r.Host)
			}
		}
		got = append(got, fmt.Sprintf("%s rows=%d quiet=%d open=%v %v", g.Name, len(g.Rows), len(g.Quiet), g.Open, shown))
	}
	// In the open group only the failed host shows; e1 is folded.
	want := []string{"masters rows=3 quiet=0 open=false []", "workers rows=490 quiet=0 open=false []", "edge rows=1 quiet=1 open=true [e2]"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("groups of a 495-host run (-want +got):\n%s", diff)
	}

	small := Build(Input{Records: j.records[:4], Plan: p, Now: t0.Add(time.Minute)}) // run + m0, m1 started/done
	for _, g := range small.Runs[0].Groups {
		if !g.Open || len(g.Quiet) > 0 {
			t.Errorf("group %s of a small run is collapsed or folds %d hosts", g.Name, len(g.Quiet))
		}
	}
}

func TestWithoutThePlanTheJournalStillTells(t *testing.T) {
	t.Parallel()
	j := &fakeJournal{}
	j.startRun(0)
	j.task("a@h1", 0, time.Second, journal.Done)
	j.task("b@h1", time.Second, 4*time.Second, journal.Done)
	rep := Build(Input{Records: j.records, PlanErr: "plan.yaml: missing", Now: t0.Add(time.Minute)})
	if rep.Title != "demo" || rep.Graph != nil || len(rep.Tasks) != 2 {
		t.Errorf("title %q, graph %v, %d tasks; want demo, no graph, 2 tasks", rep.Title, rep.Graph, len(rep.Tasks))
	}
	if diff := cmp.Diff([]string{"b@h1"}, keys(rep.Critical)); diff != "" {
		t.Errorf("critical path without needs = the longest task (-want +got):\n%s", diff)
	}
	if g := rep.Runs[0].Groups; len(g) != 1 || g[0].Name != "hosts" {
		t.Errorf("rows without the plan in groups %v, want one group 'hosts'", g)
	}
}

func TestARunThatChangedNothingKeepsTheLastWorkInView(t *testing.T) {
	t.Parallel()
	j := &fakeJournal{}
	j.startRun(0)
	j.task("a@h1", 0, time.Second, journal.Done)
	j.startRun(time.Hour) // every task unchanged: nothing journaled
	rep := Build(Input{Records: j.records, Plan: chainPlan(), Now: t0.Add(2 * time.Hour)})
	if len(rep.Runs) != 2 || !rep.Runs[0].Expanded || rep.Runs[1].Expanded || rep.CriticalRun != 1 {
		t.Errorf("%d runs, expanded %v/%v, critical path of run %d; want run 1 open with the critical path",
			len(rep.Runs), rep.Runs[0].Expanded, rep.Runs[1].Expanded, rep.CriticalRun)
	}
}
