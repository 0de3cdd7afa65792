package report

import (
	"bytes"
	"slices"
	"sort"
	"time"

	"github.com/sealflow/sealflow/internal/journal"
)

// Notes the engine writes that change what a record means.
const (
	noteInterrupted = "interrupted"
	noteSkipFlag    = "skipped by --skip"
)

// Build folds the input into a Report.
func Build(in Input) *Report {
	rep := &Report{
		StateDir:  in.StateDir,
		Generated: in.Now,
		PlanErr:   in.PlanErr,
		Counts:    map[State]int{},
	}
	if in.Plan != nil {
		rep.Title = in.Plan.Name
	}
	f := newFold()
	for _, rec := range in.Records {
		f.add(rec)
	}
	if rep.Title == "" {
		rep.Title = f.planName
	}
	last := len(f.runs) - 1
	for i, run := range f.runs {
		run.Open = i == last && in.InUse
		run.End = run.lastRecord
		if run.Open && in.Now.After(run.End) {
			run.End = in.Now
		}
		for _, b := range f.bars[run.No] {
			closeOpen(b, run)
		}
	}
	rep.Live = last >= 0 && f.runs[last].Open
	rep.Runs = f.runs

	rep.Tasks = tasks(in.Plan, f)
	for _, t := range rep.Tasks {
		// Only the run going on has running tasks; one an earlier run
		// left started has no end.
		if t.State == StateRunning && (!rep.Live || t.Run != f.runs[last].No) {
			t.State = StateInterrupted
		}
		rep.Counts[t.State]++
	}
	for _, run := range rep.Runs {
		layoutRun(run, f.bars[run.No], in.Plan)
		criticalPath(run, f.bars[run.No], in.Plan)
	}
	for i := len(rep.Runs) - 1; i >= 0; i-- {
		if run := rep.Runs[i]; run.Bars > 0 {
			rep.Critical, rep.CriticalTotal, rep.CriticalRun = run.CriticalOrder, run.CriticalTotal, run.No
			run.Expanded = true
			break
		}
	}
	rep.Slowest = slowest(rep.Tasks)
	rep.Failures, rep.MoreFailures = failures(rep.Tasks, in.Log)
	if in.Plan != nil {
		rep.Graph = graph(in.Plan, rep.Tasks, rep.Critical)
	}
	return rep
}

// fold is the journal read in order.
type fold struct {
	planName string
	runs     []*Run
	byNo     map[int]*Run
	// bars holds each run's bars by task, in first-seen order.
	bars  map[int]map[TaskKey]*Bar
	order []TaskKey // tasks in first-seen order
	final map[TaskKey]*Task
}

func newFold() *fold {
	return &fold{byNo: map[int]*Run{}, bars: map[int]map[TaskKey]*Bar{}, final: map[TaskKey]*Task{}}
}

// run returns the run a record belongs to; records written before run
// numbers existed (Run 0) go to the latest run.
func (f *fold) run(rec journal.Record) *Run {
	no := rec.Run
	if no == 0 && len(f.runs) > 0 {
		no = f.runs[len(f.runs)-1].No
	}
	r := f.byNo[no]
	if r == nil {
		r = &Run{No: no, Start: rec.Time}
		f.byNo[no] = r
		f.runs = append(f.runs, r)
		f.bars[no] = map[TaskKey]*Bar{}
	}
	if rec.Time.After(r.lastRecord) {
		r.lastRecord = rec.Time
	}
	return r
}

func (f *fold) add(rec journal.Record) {
	run := f.run(rec)
	if rec.Event == journal.RunStarted {
		if rec.Note != "" {
			f.planName = rec.Note
		}
		if rec.Time.Before(run.Start) {
			run.Start = rec.Time
		}
		return
	}
	if rec.Step == "" || rec.Event == journal.Decided {
		return
	}
	k := TaskKey{rec.Step, rec.Host}
	t := f.final[k]
	if t == nil {
		t = &Task{Key: k}
		f.final[k] = t
		f.order = append(f.order, k)
	}
	t.Run = run.No
	if rec.Attempt > t.Attempts {
		t.Attempts = rec.Attempt
	}
	b := f.bars[run.No][k]
	if b == nil {
		b = &Bar{Task: k, Start: rec.Time, End: rec.Time}
		f.bars[run.No][k] = b
	}
	if rec.Time.After(b.End) {
		b.End = rec.Time
	}
	switch rec.Event {
	case journal.Started:
		// The attempt before, if any, failed: it was retried.
		endAttempt(b, rec.Time, StateFailed)
		b.Attempts = append(b.Attempts, Attempt{No: rec.Attempt, Start: rec.Time, State: StateRunning})
		b.State, b.Error, b.Note = StateRunning, "", ""
		t.State, t.Error, t.Note = StateRunning, "", ""
	case journal.Done:
		st := StateDone
		if rec.Note == noteSkipFlag {
			st = StateSkipped
		}
		endAttempt(b, rec.Time, st)
		b.State, b.Note = st, rec.Note
		t.State, t.Duration, t.Error, t.Note = st, rec.Duration, "", rec.Note
	case journal.Failed:
		st := StateFailed
		if rec.Note == noteInterrupted {
			st = StateInterrupted
		}
		endAttempt(b, rec.Time, st)
		b.State, b.Error, b.Note = st, rec.Error, rec.Note
		t.State, t.Duration, t.Error, t.Note = st, rec.Duration, rec.Error, rec.Note
	case journal.Skipped:
		b.State, b.Note = StateSkipped, rec.Note
		t.State, t.Duration, t.Error, t.Note = StateSkipped, 0, "", rec.Note
	}
}

// endAttempt ends the bar's open attempt, if any, at end with state st.
func endAttempt(b *Bar, end time.Time, st State) {
	if n := len(b.Attempts); n > 0 && b.Attempts[n-1].State == StateRunning {
		b.Attempts[n-1].End, b.Attempts[n-1].State = end, st
	}
}

// closeOpen ends a bar still running at the end of its run: at the run's
// end, running when the run is going on, else interrupted (the process
// died without a trace of the end).
func closeOpen(b *Bar, run *Run) {
	if b.State != StateRunning {
		return
	}
	st := StateInterrupted
	if run.Open {
		st = StateRunning
	}
	b.End = run.End
	b.State = st
	if n := len(b.Attempts); n > 0 && b.Attempts[n-1].State == StateRunning {
		b.Attempts[n-1].End, b.Attempts[n-1].State = run.End, st
	}
	if st == StateInterrupted && b.Note == "" {
		b.Note = "started, no end recorded"
	}
}

// tasks lists every task: the plan's in plan order (pending when the
// journal never saw them), then those only the journal knows.
func tasks(p *Plan, f *fold) []*Task {
	var out []*Task
	seen := map[TaskKey]bool{}
	if p != nil {
		for _, s := range p.Steps {
			for _, h := range s.Hosts {
				k := TaskKey{s.ID, h}
				seen[k] = true
				if t := f.final[k]; t != nil {
					out = append(out, t)
				} else {
					out = append(out, &Task{Key: k, State: StatePending})
				}
			}
		}
	}
	for _, k := range f.order {
		if !seen[k] {
			out = append(out, f.final[k])
		}
	}
	return out
}

// layoutRun puts a run's bars on host rows, the rows in groups: a host
// goes to its first inventory group (hosts the plan does not know to
// "other"). Small runs show every group open; big ones only the groups
// where something failed or runs, and in those only the hosts where it
// did, the others folded.
func layoutRun(run *Run, bars map[TaskKey]*Bar, p *Plan) {
	run.Counts = map[State]int{}
	run.Bars = len(bars)
	rows := map[string]*Row{}
	for _, b := range bars {
		r := rows[b.Task.Host]
		if r == nil {
			r = &Row{Host: b.Task.Host}
			rows[b.Task.Host] = r
		}
		r.Bars = append(r.Bars, b)
		run.Counts[b.State]++
	}
	for _, r := range rows {
		sort.Slice(r.Bars, func(i, j int) bool {
			a, b := r.Bars[i], r.Bars[j]
			if !a.Start.Equal(b.Start) {
				return a.Start.Before(b.Start)
			}
			return a.Task.Step < b.Task.Step
		})
	}
	placed := map[string]bool{}
	var groups []*RowGroup
	if p != nil {
		for _, g := range p.Groups {
			rg := &RowGroup{Name: g.Name}
			for _, h := range g.Hosts {
				if r := rows[h]; r != nil && !placed[h] {
					placed[h] = true
					rg.Rows = append(rg.Rows, r)
				}
			}
			if len(rg.Rows) > 0 {
				groups = append(groups, rg)
			}
		}
	}
	var rest []string
	for h := range rows {
		if !placed[h] {
			rest = append(rest, h)
		}
	}
	if len(rest) > 0 {
		sort.Strings(rest)
		rg := &RowGroup{Name: "other"}
		if p == nil {
			rg.Name = "hosts"
		}
		for _, h := range rest {
			rg.Rows = append(rg.Rows, rows[h])
		}
		groups = append(groups, rg)
	}
	small := len(rows) <= OpenRows
	for _, g := range groups {
		g.Counts = map[State]int{}
		for _, r := range g.Rows {
			for _, b := range r.Bars {
				g.Counts[b.State]++
				if g.Start.IsZero() || b.Start.Before(g.Start) {
					g.Start = b.Start
				}
				if b.End.After(g.End) {
					g.End = b.End
				}
			}
		}
		g.Open = small || g.Counts[StateFailed]+g.Counts[StateInterrupted]+g.Counts[StateRunning] > 0
		if small || !g.Open {
			continue
		}
		// A big group opened for a few failures shows those hosts, and
		// folds the others.
		var trouble, quiet []*Row
		for _, r := range g.Rows {
			if slices.ContainsFunc(r.Bars, (*Bar).Trouble) {
				trouble = append(trouble, r)
			} else {
				quiet = append(quiet, r)
			}
		}
		g.Rows, g.Quiet = trouble, quiet
	}
	run.Groups = groups
}

// criticalPath finds the run's longest chain of tasks by actual durations:
// a task's chain is its own duration plus the longest chain of the tasks
// it waits for. Tasks that did not run in this run (done earlier) weigh
// nothing but still link what they connect. Without the plan there are no
// needs: the path is the longest task.
func criticalPath(run *Run, bars map[TaskKey]*Bar, p *Plan) {
	run.Critical = map[TaskKey]bool{}
	if len(bars) == 0 {
		return
	}
	var up map[TaskKey][]TaskKey
	if p != nil {
		up = p.Upstream
	}
	type best struct {
		total time.Duration
		prev  *TaskKey
	}
	memo := map[TaskKey]*best{}
	var visit func(k TaskKey) time.Duration
	visit = func(k TaskKey) time.Duration {
		if m := memo[k]; m != nil {
			return m.total // also breaks a cycle, which a valid plan has not
		}
		m := &best{}
		memo[k] = m
		var w time.Duration
		if b := bars[k]; b != nil {
			w = b.Duration()
		}
		var longest time.Duration
		for _, u := range up[k] {
			u := u
			if d := visit(u); m.prev == nil || d > longest || (d == longest && u.String() < m.prev.String()) {
				longest, m.prev = d, &u
			}
		}
		m.total = w + longest
		return m.total
	}
	var end *TaskKey
	var total time.Duration
	keys := make([]TaskKey, 0, len(bars))
	for k := range bars {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	for _, k := range keys {
		k := k
		if d := visit(k); end == nil || d > total {
			end, total = &k, d
		}
	}
	var chain []*Bar
	for k := end; k != nil; k = memo[*k].prev {
		if bars[*k] != nil {
			chain = append(chain, bars[*k])
			run.Critical[*k] = true
			bars[*k].Critical = true
		}
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	run.CriticalOrder, run.CriticalTotal = chain, total
}

// slowest ranks steps by their slowest task.
func slowest(ts []*Task) []StepStat {
	by := map[string]*StepStat{}
	var order []string
	for _, t := range ts {
		if t.Duration <= 0 {
			continue
		}
		s := by[t.Key.Step]
		if s == nil {
			s = &StepStat{Step: t.Key.Step}
			by[t.Key.Step] = s
			order = append(order, t.Key.Step)
		}
		s.Tasks++
		s.Total += t.Duration
		if t.Duration > s.Max {
			s.Max, s.SlowestHost = t.Duration, t.Key.Host
		}
	}
	out := make([]StepStat, 0, len(order))
	for _, id := range order {
		s := by[id]
		s.Mean = s.Total / time.Duration(s.Tasks)
		out = append(out, *s)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Max > out[j].Max })
	if len(out) > MaxSlowest {
		out = out[:MaxSlowest]
	}
	return out
}

// failures lists the failed and interrupted tasks with their log tails.
func failures(ts []*Task, logf func(step, host string) ([]byte, error)) ([]*Task, int) {
	var out []*Task
	more := 0
	for _, t := range ts {
		if t.State != StateFailed && t.State != StateInterrupted {
			continue
		}
		if len(out) == MaxFailures {
			more++
			continue
		}
		if logf != nil {
			if b, err := logf(t.Key.Step, t.Key.Host); err == nil {
				t.LogTail, t.LogCut = tail(b)
			}
		}
		out = append(out, t)
	}
	return out, more
}

// tail returns the last LogLines lines of b, at most LogBytes bytes, and
// whether that is less than all of b.
func tail(b []byte) (string, bool) {
	cut := false
	if len(b) > LogBytes {
		b, cut = b[len(b)-LogBytes:], true
		if i := bytes.IndexByte(b, '\n'); i >= 0 && i+1 < len(b) {
			b = b[i+1:]
		}
	}
	b = bytes.TrimRight(b, "\n")
	n := 0
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			n++
			if n == LogLines {
				b, cut = b[i+1:], true
				break
			}
		}
	}
	return string(bytes.ToValidUTF8(b, []byte("\uFFFD"))), cut
}

// graph lays the plan's steps out in columns and colours each by its tasks.
func graph(p *Plan, ts []*Task, critical []*Bar) *Graph {
	g := &Graph{}
	nodes := map[string]*Node{}
	for _, s := range p.Steps {
		n := &Node{Step: s, Counts: map[State]int{}, Col: -1}
		nodes[s.ID] = n
		g.Nodes = append(g.Nodes, n)
	}
	for _, t := range ts {
		if n := nodes[t.Key.Step]; n != nil {
			n.Counts[t.State]++
		}
	}
	crit := map[string]bool{}
	for _, b := range critical {
		crit[b.Task.Step] = true
	}
	var col func(n *Node, depth int) int
	col = func(n *Node, depth int) int {
		if n.Col >= 0 || depth > len(p.Steps) {
			return n.Col
		}
		c := 0
		for _, id := range n.Step.Needs {
			if m := nodes[id]; m != nil {
				if d := col(m, depth+1) + 1; d > c {
					c = d
				}
			}
		}
		n.Col = c
		return c
	}
	perCol := map[int]int{}
	for _, n := range g.Nodes {
		col(n, 0)
		n.Row = perCol[n.Col]
		perCol[n.Col]++
		if n.Col+1 > g.Cols {
			g.Cols = n.Col + 1
		}
		if perCol[n.Col] > g.Rows {
			g.Rows = perCol[n.Col]
		}
		n.State = worst(n.Counts)
		n.Critical = crit[n.Step.ID]
	}
	for _, n := range g.Nodes {
		for _, id := range n.Step.Needs {
			if m := nodes[id]; m != nil {
				g.Edges = append(g.Edges, Edge{From: m, To: n, Critical: m.Critical && n.Critical})
			}
		}
	}
	return g
}
