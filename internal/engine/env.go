package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/sealflow/sealflow/plans"
	"github.com/sealflow/sealflow/steps"
)

// env is the expression environment of task t: vars, its host, the groups,
// and the outputs of the steps it needs and reads. For a needed step that runs on
// t's host, `outputs` is that host's; for one that runs on a single other
// host, that host's; `hosts[NAME].outputs` reaches any host's.
func (r *runner) env(t *task) *plans.Env {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.envWith(t, r.finished,
		func(step string) map[string]plans.HostOutputs { return r.stepHosts(step).view() })
}

func (r *runner) envWith(t *task, lookup func(TaskID) *doneTask, hosts func(string) map[string]plans.HostOutputs) *plans.Env {
	env := r.plan.NewEnv(t.host)
	if env.Steps == nil {
		env.Steps = map[string]plans.StepView{}
	}
	reads := t.step.Reads
	if t.step.ReadsAny {
		reads = t.step.Upstream
	}
	for _, n := range reads {
		need := r.plan.Step(n)
		view := plans.StepView{Outputs: map[string]string{}, Hosts: hosts(n)}
		if view.Hosts == nil {
			view.Hosts = map[string]plans.HostOutputs{}
		}
		var from *doneTask
		if r.runsOn(n, t.host.Name) {
			from = lookup(TaskID{Step: n, Host: t.host.Name})
		} else if len(need.Targets) == 1 {
			from = lookup(TaskID{Step: n, Host: need.Targets[0].Name})
		}
		if from != nil && len(from.outputs) > 0 {
			view.Outputs = from.outputs.toMap()
		}
		env.Steps[n] = view
	}
	return env
}

// finish records a finished task for its dependents.
func (r *runner) finish(id TaskID, fp string, out steps.Outputs) {
	o := compact(out)
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.task(id); t != nil {
		t.done, t.finished = doneTask{fp: fp, outputs: o}, true
	} else {
		r.done[id] = &doneTask{fp: fp, outputs: o}
	}
	if hs := r.hosts[id.Step]; hs != nil {
		hs.add(id.Host, o)
	}
}

// stepHosts returns the finished hosts of step, made from its finished
// tasks on the first call; the caller holds mu.
func (r *runner) stepHosts(step string) *stepHosts {
	if hs := r.hosts[step]; hs != nil {
		return hs
	}
	s := r.plan.Step(step)
	if s == nil {
		return &stepHosts{}
	}
	hs := &stepHosts{all: make(map[string]plans.HostOutputs, len(s.Targets))}
	for _, h := range s.Targets {
		if d := r.finished(TaskID{Step: step, Host: h.Name}); d != nil {
			hs.add(h.Name, d.outputs)
		}
	}
	r.hosts[step] = hs
	return hs
}

// fingerprint identifies what a task would do: its kind, rendered
// parameters, host, the content of the files of this machine it reads,
// and the fingerprints and outputs of the tasks it waits for (so a
// change upstream re-runs what depends on it). A task done earlier whose
// file is gone keeps its fingerprint: a resume needs no file it sent.
func (r *runner) fingerprint(t *task, params steps.Params) string {
	h := sha256.New()
	write := func(s string) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	write("v1")
	write(t.kind.Name)
	write(t.host.Name)
	write(t.host.Address)
	b, _ := json.Marshal(params) // maps are encoded with sorted keys
	write(string(b))
	for _, name := range t.kind.LocalFiles {
		path, _ := params[name].(string)
		if path == "" {
			continue
		}
		sums := &r.sums
		if t.kind.Sums != nil {
			sums = t.kind.Sums // the one the step reads the file with
		}
		sum, err := sums.Sum(path)
		if err != nil {
			if p := r.prior[t.id]; p.typed() == PriorDone {
				return p.fingerprint()
			}
			sum = "unreadable"
		}
		write(name)
		write(sum)
	}
	r.mu.Lock()
	for _, up := range t.upstream {
		write(up.String())
		if d := r.finished(up); d != nil {
			write(d.fp)
			d.outputs.each(func(k, v string) {
				write(k)
				write(v)
			})
		}
	}
	r.mu.Unlock()
	return hex.EncodeToString(h.Sum(nil)[:16])
}
