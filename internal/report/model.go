// Package report builds the picture of a run from its state directory's
// journal, saved plan and task logs, and writes it as one self-contained
// HTML page (no request leaves it: styles and script are inline).
//
// Build folds journal records into a Report: per run, one bar per task on
// its host's row, the attempts inside it; the critical path (the longest
// chain of needs by actual durations); the slowest steps; the failures with
// their log tails. It reads no file itself: the caller hands it the
// records, the plan's shape and a way to read a log, so it works the same
// on a finished run and on a journal being appended (Replay already drops
// a torn last record).
package report

import (
	"time"

	"github.com/sealflow/sealflow/internal/journal"
)

// TaskKey names a task: one step on one host.
type TaskKey struct{ Step, Host string }

func (k TaskKey) String() string { return k.Step + "@" + k.Host }

// State is what a task's bar shows; it is also the bar's CSS class.
type State string

const (
	StateDone        State = "done"
	StateFailed      State = "failed"
	StateSkipped     State = "skipped"
	StateRunning     State = "running"     // started, no end yet, and a run holds the state directory
	StateInterrupted State = "interrupted" // stopped by Ctrl-C, or started with no end and no run going on
	StatePending     State = "pending"     // in the plan, never started
)

// Plan is the shape of the saved plan: what the journal alone does not say.
type Plan struct {
	Name   string
	Steps  []Step  // plan order
	Groups []Group // inventory order
	// Upstream lists the tasks each task waits for (the ready rule).
	Upstream map[TaskKey][]TaskKey
}

// Step is one step of the plan.
type Step struct {
	ID, Kind string
	Needs    []string
	Hosts    []string // its targets, inventory order
}

// Group is one inventory group.
type Group struct {
	Name  string
	Hosts []string
}

// Input is what Build reads.
type Input struct {
	Records []journal.Record
	// Plan is nil when the saved plan cannot be read (PlanErr says why):
	// the report then has no step graph and no needs.
	Plan    *Plan
	PlanErr string
	// Log returns a task's log (nil: no logs).
	Log func(step, host string) ([]byte, error)
	// Now is when the report is made; InUse says a run holds the state
	// directory (its open tasks are running, not interrupted).
	Now   time.Time
	InUse bool
	// StateDir is shown in the header.
	StateDir string
}

// Report is the model the page is drawn from.
type Report struct {
	Title     string
	StateDir  string
	Generated time.Time
	Live      bool
	PlanErr   string

	Runs  []*Run  // oldest first
	Tasks []*Task // plan order, then tasks only the journal knows
	// Counts of tasks by final state.
	Counts map[State]int

	// Critical is the critical path of the last run that ran tasks, first
	// task first, and its length.
	Critical      []*Bar
	CriticalTotal time.Duration
	CriticalRun   int

	Slowest  []StepStat
	Failures []*Task // root causes: failed or interrupted tasks, at most MaxFailures
	// MoreFailures is how many failures were left out.
	MoreFailures int
	Graph        *Graph
}

// Run is one `run` or `resume` of the state directory.
type Run struct {
	No         int
	Start, End time.Time
	Open       bool // still going on
	// Expanded marks the run the page shows open: the last one that ran
	// tasks (a second run that changed nothing has none).
	Expanded bool
	Groups   []*RowGroup
	Bars     int // tasks that did something in this run
	Counts   map[State]int
	// Critical marks the tasks of this run's critical path.
	Critical      map[TaskKey]bool
	CriticalOrder []*Bar
	CriticalTotal time.Duration

	lastRecord time.Time
}

// Duration is the run's wall-clock time.
func (r *Run) Duration() time.Duration { return r.End.Sub(r.Start) }

// RowGroup is the rows of one inventory group; it starts collapsed on big
// runs unless something in it failed or runs.
type RowGroup struct {
	Name string
	Rows []*Row
	// Quiet holds, in a big run, the rows of an open group where nothing
	// failed or runs: shown folded under the rows that need a look.
	Quiet  []*Row
	Open   bool
	Counts map[State]int
	// Start and End span the group's bars, for the collapsed summary.
	Start, End time.Time
}

// Hosts is the number of rows of the group.
func (g *RowGroup) Hosts() int { return len(g.Rows) + len(g.Quiet) }

// Failed reports whether a task of the group failed in the run.
func (g *RowGroup) Failed() bool { return g.Counts[StateFailed]+g.Counts[StateInterrupted] > 0 }

// Row is one host's line of a run's timeline.
type Row struct {
	Host string
	Bars []*Bar
}

// Bar is one task in one run: from its first start to its end.
type Bar struct {
	Task       TaskKey
	State      State
	Start, End time.Time
	Attempts   []Attempt
	Critical   bool
	Error      string
	Note       string
}

// Trouble reports whether the bar needs a look: failed, interrupted or
// still running.
func (b *Bar) Trouble() bool {
	return b.State == StateFailed || b.State == StateInterrupted || b.State == StateRunning
}

// Duration is the bar's length.
func (b *Bar) Duration() time.Duration { return b.End.Sub(b.Start) }

// Retried returns the attempts that failed and were tried again: all but
// the last.
func (b *Bar) Retried() []Attempt {
	if len(b.Attempts) < 2 {
		return nil
	}
	return b.Attempts[:len(b.Attempts)-1]
}

// Attempt is one try of a task within a bar.
type Attempt struct {
	No         int
	Start, End time.Time
	State      State // failed for an attempt that was retried
}

// Task is a task's final state over all runs.
type Task struct {
	Key      TaskKey
	State    State
	Attempts int
	Duration time.Duration
	Error    string
	Note     string
	Run      int // the last run that touched it
	LogTail  string
	// LogCut is set when LogTail is only the end of the log.
	LogCut bool
}

// StepStat is one row of the slowest steps.
type StepStat struct {
	Step        string
	Tasks       int
	Max, Mean   time.Duration
	SlowestHost string
	Total       time.Duration
}

// Graph is the step graph laid out in columns: a step's column is one
// more than its deepest need's.
type Graph struct {
	Nodes []*Node
	Edges []Edge
	Cols  int
	Rows  int // the tallest column
}

// Node is one step in the graph.
type Node struct {
	Step     Step
	Col, Row int
	State    State // worst state of its tasks
	Counts   map[State]int
	Critical bool
}

// Edge goes from a need to the step that needs it.
type Edge struct {
	From, To *Node
	Critical bool
}

// Limits of what the page shows.
const (
	MaxFailures = 50    // failures with their logs
	MaxSlowest  = 10    // rows of the slowest steps
	LogLines    = 40    // lines of a failure's log tail
	LogBytes    = 8192  // bytes of a failure's log tail
	OpenRows    = 40    // a run with at most this many hosts shows every group open
	logRead     = 65536 // bytes of a log read to find its tail
)

// severity orders states for a step's or group's colour: a failure shows
// over everything.
var severity = map[State]int{StateFailed: 6, StateInterrupted: 5, StateRunning: 4, StatePending: 3, StateDone: 2, StateSkipped: 1}

func worst(counts map[State]int) State {
	var w State
	for s, n := range counts {
		if n > 0 && severity[s] > severity[w] {
			w = s
		}
	}
	return w
}
