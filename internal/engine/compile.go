package engine

import (
	"fmt"
	"strings"

	"github.com/sealflow/sealflow/dag"
	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/plans"
	"github.com/sealflow/sealflow/steps"
)

// compile makes one task per (step, host) of the run and connects them
// by the ready rule: a task waits for each needed step on its own host if
// that step runs there, else on all of that step's hosts.
func (r *runner) compile() error {
	included, err := r.limitHosts()
	if err != nil {
		return err
	}
	r.graph = dag.New[TaskID]()
	r.on = newHostSets(r.plan)
	n := 0
	for _, s := range r.plan.Steps {
		n += len(s.Targets)
	}
	// Sized once: at thousands of hosts, maps grown by doubling hold up
	// to twice the room they use.
	r.graph.Grow(n, n)
	r.tasks = make([]task, 0, n)
	r.stepTasks = make(map[string]int, len(r.plan.Steps))
	for _, s := range r.plan.Steps {
		for _, h := range s.Targets {
			if !included[h.Name] {
				continue
			}
			id := TaskID{Step: s.ID, Host: h.Name}
			if r.task(id) != nil {
				continue // a host selected twice is one task
			}
			// The graph numbers its nodes as they are added: a task's
			// number is its index in r.tasks and r.results.
			r.tasks = append(r.tasks, task{id: id, step: s, host: h, kind: s.KindDef, n: len(r.tasks)})
			r.stepTasks[s.ID]++
			r.graph.Add(id)
		}
	}
	var missing []string
	for i := range r.tasks {
		t := &r.tasks[i]
		id := t.id
		for _, up := range r.upstreamOf(t.step, t.host) {
			t.upstream = append(t.upstream, up)
			if r.task(up) != nil {
				r.graph.Connect(up, id)
				continue
			}
			// Outside --limit: it must be done already.
			p := r.prior[up]
			if p == nil || (p.state != journal.Done && p.state != journal.Skipped) {
				missing = append(missing, fmt.Sprintf("%s needs %s, which is outside --limit and not done", id, up))
				continue
			}
			r.finish(up, p.fp, p.outputs)
			r.secrets.Add(p.secretValues()...)
		}
	}
	if len(missing) > 0 {
		if len(missing) > 10 {
			missing = append(missing[:10], fmt.Sprintf("... and %d more", len(missing)-10))
		}
		return &InputError{Msg: "cannot run with this --limit:\n  " + strings.Join(missing, "\n  ") +
			"\nhint: add those hosts to --limit, or run without --limit first"}
	}
	return nil
}

// upstreamOf lists the tasks that (s, h) waits for.
// A step that reads steps.X.hosts waits for every host of X.
func (r *runner) upstreamOf(s *plans.Step, h *plans.Host) []TaskID {
	var ids []TaskID
	for _, n := range s.Needs {
		need := r.plan.Step(n)
		if need == nil {
			continue
		}
		if r.runsOn(n, h.Name) && !readsHosts(s, n) {
			ids = append(ids, TaskID{Step: n, Host: h.Name})
			continue
		}
		for _, o := range need.Targets {
			ids = append(ids, TaskID{Step: n, Host: o.Name})
		}
	}
	return ids
}

func readsHosts(s *plans.Step, need string) bool {
	for _, id := range s.ReadsHosts {
		if id == need || id == "*" {
			return true
		}
	}
	return false
}

// runsOn reports whether s has a task on host.
func (r *runner) runsOn(step, host string) bool { return r.on.has(step, host) }

// hostSets holds the hosts of each step, a bit per host of the plan: a
// map of host names per step took 50 bytes a task at thousands of hosts.
type hostSets struct {
	no map[string]int      // host name → bit
	on map[string][]uint64 // step ID → its hosts' bits
}

func newHostSets(p *plans.Plan) *hostSets {
	hs := &hostSets{no: make(map[string]int, len(p.Hosts)), on: make(map[string][]uint64, len(p.Steps))}
	for _, h := range p.Hosts {
		if _, ok := hs.no[h.Name]; !ok {
			hs.no[h.Name] = len(hs.no)
		}
	}
	for _, s := range p.Steps {
		for _, h := range s.Targets {
			n, ok := hs.no[h.Name]
			if !ok {
				n = len(hs.no)
				hs.no[h.Name] = n
			}
			bits := hs.on[s.ID]
			if len(bits) == 0 {
				bits = make([]uint64, (len(p.Hosts)+63)/64)
			}
			for n/64 >= len(bits) {
				bits = append(bits, 0)
			}
			bits[n/64] |= 1 << (n % 64)
			hs.on[s.ID] = bits
		}
	}
	return hs
}

func (hs *hostSets) has(step, host string) bool {
	n, ok := hs.no[host]
	if !ok {
		return false
	}
	bits := hs.on[step]
	return n/64 < len(bits) && bits[n/64]&(1<<(n%64)) != 0
}

// limitHosts returns the hosts selected by --limit (all without it).
func (r *runner) limitHosts() (map[string]bool, error) {
	in := map[string]bool{}
	if len(r.opts.Limit) == 0 {
		for _, h := range r.plan.Hosts {
			in[h.Name] = true
		}
		return in, nil
	}
	for _, name := range r.opts.Limit {
		if g := r.plan.Group(name); g != nil {
			for _, h := range g.Hosts {
				in[h.Name] = true
			}
			continue
		}
		if h := r.plan.Host(name); h != nil {
			in[h.Name] = true
			continue
		}
		var known []string
		for _, g := range r.plan.Groups {
			known = append(known, g.Name)
		}
		return nil, &InputError{Msg: fmt.Sprintf("--limit %s: no such host or group (groups: %s)", name, strings.Join(known, ", "))}
	}
	return in, nil
}

// checkInterrupted stops the run before it starts when a task was left
// half-done by an earlier run and sealflow cannot tell whether running it
// again is safe: the user decides with --rerun or --skip.
func (r *runner) checkInterrupted() error {
	var undecided, ids []string
	for i := range r.tasks {
		id := r.tasks[i].id
		p := r.prior[id]
		if !p.interrupted() {
			continue
		}
		t := r.task(id)
		safe := t.kind.Rerunnable
		if !safe {
			step, err := r.buildFromPrior(t)
			safe = err == nil && steps.SafeToRerun(t.kind, step)
		}
		in := DecideInput{Prior: p.typed(), Rerun: r.rerun[id], Skip: r.skip[id], SafeToRerun: safe}
		if Decide(in).Decision != DecideAsk {
			continue
		}
		why := "no end recorded"
		if p.unknown {
			why = "the connection was lost while it ran; it may have completed"
		}
		undecided = append(undecided, fmt.Sprintf("%s (attempt %d started %s, %s)",
			id, p.attempts, p.started.Format("2006-01-02 15:04:05"), why))
		ids = append(ids, id.String())
	}
	if len(undecided) == 0 {
		return nil
	}
	list := strings.Join(ids, ",")
	return &InputError{Msg: fmt.Sprintf("an earlier run was interrupted in the middle of tasks that may not be safe to run twice:\n  %s\n"+
		"check the hosts, then resume with --rerun %s to run them again, or --skip %s for those that did complete",
		strings.Join(undecided, "\n  "), list, list)}
}

// buildFromPrior builds t's step from the outputs the journal holds for
// its upstream tasks (they all finished before t started).
func (r *runner) buildFromPrior(t *task) (steps.Step, error) {
	lookup := func(id TaskID) *doneTask {
		if p := r.prior[id]; p != nil && p.state == journal.Done {
			return &doneTask{fp: p.fp, outputs: compact(p.outputs)}
		}
		return nil
	}
	env := r.envWith(t, lookup, func(string) map[string]plans.HostOutputs { return nil })
	params, err := t.step.Render(env)
	if err != nil {
		return nil, err
	}
	return t.kind.New(params)
}
