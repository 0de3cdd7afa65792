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
	tasks map[TaskID]*task
	order []TaskID // plan order: steps, then hosts
	// on holds each step's hosts.
	on    map[string]map[string]bool
	prior map[TaskID]*prior
	rerun map[TaskID]bool
	skip  map[TaskID]bool
	runNo int

	mu      sync.Mutex
	results map[TaskID]*TaskResult
	done    map[TaskID]*doneTask // outputs and fingerprints of finished tasks
	hosts   map[string]map[string]plans.HostOutputs
	secrets *redact.Set

	emitMu sync.Mutex
}

// doneTask is a finished task as its dependents see it.
type doneTask struct {
	fp      string
	outputs steps.Outputs
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
		opts.Parallel = 64
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
		tasks:   map[TaskID]*task{},
		rerun:   map[TaskID]bool{},
		skip:    map[TaskID]bool{},
		results: map[TaskID]*TaskResult{},
		done:    map[TaskID]*doneTask{},
		hosts:   map[string]map[string]plans.HostOutputs{},
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
		if _, ok := r.tasks[id]; !ok {
			return nil, &InputError{Msg: fmt.Sprintf("--rerun %s: no such task in this run (%s)", id, r.taskHint(id))}
		}
		r.rerun[id] = true
	}
	for _, id := range opts.Skip {
		if _, ok := r.tasks[id]; !ok {
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
	r.emit(Event{Type: EventRunStart, Total: len(r.order), Note: r.plan.Name})
	for _, id := range r.order {
		r.results[id] = &TaskResult{ID: id, Status: StatusNotRun, LogPath: r.opts.State.LogPath(id.Step, id.Host)}
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
	res := &Result{Interrupted: ctx.Err() != nil}
	r.mu.Lock()
	for _, id := range r.order {
		tr := *r.results[id]
		if st := report.States[id]; st == dag.Cancelled && tr.Status == StatusFailed {
			tr.Status = StatusCancelled
		}
		res.Tasks = append(res.Tasks, tr)
	}
	r.mu.Unlock()
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
