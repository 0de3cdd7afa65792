package engine

import (
	"fmt"
	"strings"

	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/internal/redact"
	"github.com/sealflow/sealflow/plans"
	"github.com/sealflow/sealflow/steps"
)

// TaskPreview is what a run would do with one task, as `sealflow plan`
// shows it.
type TaskPreview struct {
	ID      TaskID
	Kind    string
	Verdict Verdict
	// When is the step's condition when only the run can decide it (it
	// reads outputs of tasks that run first).
	When string
	// Describe is what the step would do on the host (steps.Describer),
	// nil when its parameters read outputs not known yet.
	Describe []string
	// Fingerprint is "" when it depends on tasks that run first.
	Fingerprint string
}

// Preview decides every task of p as a run would now, given the journal's
// records, through the same Decide as the walk; it contacts no host and
// writes nothing. Outputs come from the journal: a task that needs one
// that runs first cannot know its fingerprint, and a condition on such
// outputs is shown, not decided.
func Preview(p *plans.Plan, records []journal.Record, rerun, skip []TaskID) ([]TaskPreview, error) {
	r := &runner{
		opts:    Options{Plan: p},
		plan:    p,
		rerun:   map[TaskID]bool{},
		skip:    map[TaskID]bool{},
		done:    map[TaskID]*doneTask{},
		hosts:   map[string]*stepHosts{},
		secrets: &redact.Set{},
	}
	r.prior, _ = replay(records)
	if err := r.compile(); err != nil {
		return nil, err
	}
	for _, id := range rerun {
		r.rerun[id] = true
	}
	for _, id := range skip {
		r.skip[id] = true
	}
	order, err := r.graph.TopoSort()
	if err != nil {
		return nil, err
	}
	unknown := map[TaskID]bool{} // tasks whose outputs only the run will tell
	// changed holds the tasks whose fingerprint will differ from the one
	// they were done with, and why: what depends on them runs again.
	changed := map[TaskID]string{}
	byID := map[TaskID]TaskPreview{}
	for _, id := range order {
		t := r.task(id)
		blind, because := false, ""
		for _, up := range t.upstream {
			blind = blind || unknown[up]
			if why, ok := changed[up]; ok && because == "" {
				because = why
			}
		}
		pv, known := r.preview(t, blind)
		if !known || blind {
			unknown[id] = true
		}
		p := r.prior[id]
		switch {
		case because != "" && pv.Verdict.Decision == DecideUnchanged:
			pv.Verdict = Verdict{DecideRerun, "what it needs changed (" + because + ")"}
			changed[id] = because
		case because != "":
			changed[id] = because
		case pv.Fingerprint != "" && p.typed() == PriorDone && pv.Fingerprint != p.fp:
			changed[id] = id.String()
		}
		byID[id] = pv
	}
	out := make([]TaskPreview, 0, len(r.tasks))
	for i := range r.tasks {
		id := r.tasks[i].id
		out = append(out, byID[id])
	}
	return out, nil
}

// preview decides one task; known says whether its outputs are known
// before the run (unchanged, skipped).
func (r *runner) preview(t *task, blind bool) (TaskPreview, bool) {
	pv := TaskPreview{ID: t.id, Kind: t.step.Kind}
	env := r.env(t)
	readsOutputs := (len(t.step.Reads) > 0 || t.step.ReadsAny) && strings.Contains(t.step.When, "steps")
	if t.step.When != "" {
		ok, err := t.step.EvalWhen(env)
		switch {
		case blind && readsOutputs:
			pv.When = t.step.When
		case err != nil:
			pv.Verdict = Verdict{DecideRun, fmt.Sprintf("when: %v (the task fails)", err)}
			return pv, false
		case !ok:
			pv.Verdict = Verdict{DecideSkip, "when is false"}
			r.finish(t.id, r.fingerprint(t, nil), nil)
			return pv, true
		}
	}
	p := r.prior[t.id]
	var step steps.Step
	params, err := t.step.Render(env)
	if err == nil {
		if !blind {
			pv.Fingerprint = r.fingerprint(t, params)
		}
		if step, err = t.kind.New(params); err == nil {
			if d, ok := step.(steps.Describer); ok {
				pv.Describe = d.Describe(&steps.Target{
					Host:      steps.Host{Name: t.host.Name, Address: t.host.Address, Groups: t.host.Groups, Labels: t.host.Labels},
					Become:    t.host.Become,
					StepHosts: r.stepTasks[t.id.Step],
				})
			}
		}
	}
	if err != nil && !blind {
		pv.Verdict = Verdict{DecideRun, fmt.Sprintf("%v (the task fails)", err)}
		return pv, false
	}
	if err != nil {
		pv.Describe = []string{"(its parameters read outputs of tasks that run first)"}
	}
	safe := t.kind.Rerunnable
	if !safe && p.interrupted() {
		if step == nil {
			step, _ = r.buildFromPrior(t)
		}
		safe = step != nil && steps.SafeToRerun(t.kind, step)
	}
	pv.Verdict = Decide(DecideInput{Prior: p.typed(), PriorFP: p.fingerprint(), Fingerprint: pv.Fingerprint,
		Rerun: r.rerun[t.id], Skip: r.skip[t.id], SafeToRerun: safe, EveryRun: t.kind.EveryRun})
	switch pv.Verdict.Decision {
	case DecideUnchanged:
		r.finish(t.id, p.fp, p.outputs)
		return pv, true
	case DecideSkip:
		r.finish(t.id, pv.Fingerprint, nil)
		return pv, true
	}
	if p.typed() == PriorDone {
		// Its outputs of last time, for what depends on it to describe
		// itself with; they stay unknown for fingerprints.
		r.finish(t.id, p.fp, p.outputs)
	}
	return pv, false
}
