// Package engine turns a plan into tasks (one per step and host) on a
// dag, runs them in parallel with retries and timeouts, and journals every
// transition so that a later run resumes where this one stopped.
package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sealflow/sealflow/dag"
	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/internal/redact"
	"github.com/sealflow/sealflow/internal/transport"
	"github.com/sealflow/sealflow/plans"
	"github.com/sealflow/sealflow/steps"
)

// defaultParallel is Options.Parallel when it is not set.
const defaultParallel = 64

// DefaultTimeout bounds a task attempt whose step sets no timeout.
const DefaultTimeout = time.Hour

// Options configure one run.
type Options struct {
	Plan *plans.Plan
	// State is the run's state directory; its journal decides what is
	// already done.
	State *journal.State
	// Connect returns the connection to a host (shared by its tasks).
	Connect func(ctx context.Context, h *plans.Host) (transport.Conn, error)
	// Parallel bounds the tasks running at once (default 64).
	Parallel  int
	KeepGoing bool
	// Limit restricts the run to these hosts or groups.
	Limit []string
	// Rerun and Skip decide interrupted tasks (or force a done one).
	Rerun []TaskID
	Skip  []TaskID
	// Events receives progress; it may be nil.
	Events func(Event)
	// RetryBase is the first retry delay, doubled on each retry (default 1s, at most 30s).
	RetryBase time.Duration
	Now       func() time.Time
}

// InputError is a problem with what the user asked for (exit code 2).
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// Result is the outcome of a run.
type Result struct {
	Tasks []TaskResult
	// Interrupted is true when the run was cancelled (Ctrl-C).
	Interrupted bool
}

// OK reports whether every task is done, unchanged or skipped.
func (r *Result) OK() bool {
	if r.Interrupted {
		return false
	}
	for _, t := range r.Tasks {
		switch t.Status {
		case StatusDone, StatusCached, StatusSkipped:
		default:
			return false
		}
	}
	return true
}

// Warnings returns the warnings of every task, in task order.
func (r *Result) Warnings() []string {
	var out []string
	for _, t := range r.Tasks {
		out = append(out, t.Warnings...)
	}
	return out
}

// Failures returns the failed tasks: the root causes.
func (r *Result) Failures() []TaskResult {
	var out []TaskResult
	for _, t := range r.Tasks {
		if t.Status == StatusFailed {
			out = append(out, t)
		}
	}
	return out
}

// Count returns how many tasks have status s.
func (r *Result) Count(s Status) int {
	n := 0
	for _, t := range r.Tasks {
		if t.Status == s {
			n++
		}
	}
	return n
}

// Run runs the plan. It returns an *InputError before running anything
// when the request cannot be honoured; task failures are in the Result.
func Run(ctx context.Context, opts Options) (*Result, error) {
	r, err := newRunner(opts)
	if err != nil {
		return nil, err
	}
	return r.run(ctx)
}

type runner struct {
	opts  Options
	plan  *plans.Plan
	now   func() time.Time
	graph *dag.Graph[TaskID]
	tasks []task // in plan order (steps, then hosts): task n is graph node n
	// on holds each step's hosts.
	on *hostSets
	// stepTasks is how many tasks each step has in the run (its hosts
	// within --limit).
	stepTasks map[string]int
	prior     map[TaskID]*prior
	rerun     map[TaskID]bool
	skip      map[TaskID]bool
	runNo     int

	mu      sync.Mutex
	results []TaskResult         // in plan order (task.n)
	done    map[TaskID]*doneTask // finished tasks outside the run (--limit); the run's own are in their task
	hosts   map[string]*stepHosts
	secrets *redact.Set
	sums    steps.FileSums // of the files tasks read whose kind keeps none (fingerprint)

	emitMu sync.Mutex
}

// result returns the result of task id of the run; the caller holds mu.
func (r *runner) result(id TaskID) *TaskResult { return &r.results[r.task(id).n] }

// task returns task id of the run, nil when the run has no such task.
func (r *runner) task(id TaskID) *task {
	if i, ok := r.graph.Index(id); ok {
		return &r.tasks[i]
	}
	return nil
}

// finished returns task id's outputs and fingerprint once it has
// finished (nil before); the caller holds mu.
func (r *runner) finished(id TaskID) *doneTask {
	if t := r.task(id); t != nil {
		if t.finished {
			return &t.done
		}
		return nil
	}
	return r.done[id]
}

// doneTask is a finished task as its dependents see it.
type doneTask struct {
	fp      string
	outputs outputs
}

// Check reports what Run would refuse before it runs anything (an
// *InputError: a --limit, --rerun or --skip that names nothing of the
// plan, a limit that leaves needs undone, interrupted tasks to decide),
// judged against the journal records given (nil: a fresh state, as
// after --fresh). opts.State and opts.Connect are not used. Callers check
// before they change the state directory.
func Check(opts Options, records []journal.Record) error {
	_, err := newRunnerFrom(opts, records)
	return err
}

func newRunner(opts Options) (*runner, error) {
	if opts.Plan == nil || opts.State == nil || opts.Connect == nil {
		return nil, errors.New("engine: Plan, State and Connect are required")
	}
	records, err := opts.State.Replay()
	if err != nil {
		return nil, err
	}
	return newRunnerFrom(opts, records)
}

func newRunnerFrom(opts Options, records []journal.Record) (*runner, error) {
	if opts.Plan == nil {
		return nil, errors.New("engine: Plan is required")
	}
	if opts.Parallel <= 0 {
		opts.Parallel = defaultParallel
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &runner{
		opts:    opts,
		plan:    opts.Plan,
		now:     opts.Now,
		rerun:   map[TaskID]bool{},
		skip:    map[TaskID]bool{},
		done:    map[TaskID]*doneTask{},
		hosts:   map[string]*stepHosts{},
		secrets: &redact.Set{},
	}
	// Secret vars are hidden from the start: in logs, errors and events,
	// and an output that carries one is sealed.
	r.secrets.Add(opts.Plan.SecretValues()...)
	r.prior, r.runNo = replay(records)
	r.runNo++
	if err := r.compile(); err != nil {
		return nil, err
	}
	for _, id := range opts.Rerun {
		if r.task(id) == nil {
			return nil, &InputError{Msg: fmt.Sprintf("--rerun %s: no such task in this run (%s)", id, r.taskHint(id))}
		}
		r.rerun[id] = true
	}
	for _, id := range opts.Skip {
		if r.task(id) == nil {
			return nil, &InputError{Msg: fmt.Sprintf("--skip %s: no such task in this run (%s)", id, r.taskHint(id))}
		}
		if r.rerun[id] {
			return nil, &InputError{Msg: fmt.Sprintf("%s is given to both --rerun and --skip; choose one", id)}
		}
		r.skip[id] = true
	}
	if err := r.checkInterrupted(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	if err := r.record(journal.Record{Event: journal.RunStarted, Note: r.plan.Name}, true); err != nil {
		return nil, err
	}
	r.emit(Event{Type: EventRunStart, Total: len(r.tasks), Note: r.plan.Name})
	r.results = make([]TaskResult, len(r.tasks))
	for i := range r.tasks {
		id := r.tasks[i].id
		r.results[i] = TaskResult{ID: id, Status: StatusNotRun}
	}
	report := dag.Walk(ctx, r.graph, dag.WalkOptions[TaskID]{
		Limit:     r.opts.Parallel,
		KeepGoing: r.opts.KeepGoing,
		Group:     func(id TaskID) string { return id.Step },
		GroupLimit: func(step string) int {
			if s := r.plan.Step(step); s != nil {
				return s.Serial
			}
			return 0
		},
	}, r.visit)
	// Every visit has returned: the results are the Result's.
	res := &Result{Interrupted: ctx.Err() != nil, Tasks: r.results}
	for i := range res.Tasks {
		tr := &res.Tasks[i]
		if st := report.States[tr.ID]; st == dag.Cancelled && tr.Status == StatusFailed {
			tr.Status = StatusCancelled
		}
	}
	r.emit(Event{Type: EventRunEnd, Result: res})
	return res, nil
}

func (r *runner) emit(ev Event) {
	if r.opts.Events == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = r.now()
	}
	ev.Error = r.secrets.Redact(ev.Error)
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.opts.Events(ev)
}

func (r *runner) taskHint(id TaskID) string {
	s := r.plan.Step(id.Step)
	if s == nil {
		return fmt.Sprintf("the plan has no step %q", id.Step)
	}
	var names []string
	for _, h := range s.Targets {
		names = append(names, h.Name)
	}
	return fmt.Sprintf("step %s runs on %v", id.Step, names)
}
