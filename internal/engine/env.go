package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"sort"

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
		func(step string) map[string]plans.HostOutputs { return r.hosts[step].view() })
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
		if from != nil && from.outputs != nil {
			view.Outputs = from.outputs
		}
		env.Steps[n] = view
	}
	return env
}

// finish records a finished task for its dependents.
func (r *runner) finish(id TaskID, fp string, outputs steps.Outputs) {
	if outputs == nil {
		outputs = steps.Outputs{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.task(id); t != nil {
		t.done, t.finished = doneTask{fp: fp, outputs: outputs}, true
	} else {
		r.done[id] = &doneTask{fp: fp, outputs: outputs}
	}
	hs := r.hosts[id.Step]
	if hs == nil {
		size := 0
		if s := r.plan.Step(id.Step); s != nil {
			size = len(s.Targets)
		}
		hs = &stepHosts{all: make(map[string]plans.HostOutputs, size)}
		r.hosts[id.Step] = hs
	}
	hs.add(id.Host, outputs)
}

// stepHosts holds the outputs of a step's finished tasks by host. The map
// an environment is given (view) is never modified afterwards, so it stays
// valid while other tasks finish; it is copied only when an environment
// asks for it after a task finished, not at every finish (which made a
// run quadratic in the number of hosts).
type stepHosts struct {
	all  map[string]plans.HostOutputs // owned by the runner, under its mu
	snap map[string]plans.HostOutputs // handed out; nil when all changed since
}

func (hs *stepHosts) add(host string, outputs steps.Outputs) {
	hs.all[host] = plans.HostOutputs{Outputs: outputs}
	hs.snap = nil
}

// view returns the step's finished hosts as of now (nil for none); the
// caller holds the runner's mu.
func (hs *stepHosts) view() map[string]plans.HostOutputs {
	if hs == nil {
		return nil
	}
	if hs.snap == nil {
		hs.snap = maps.Clone(hs.all)
	}
	return hs.snap
}

// fingerprint identifies what a task would do: its kind, rendered
// parameters, host, and the fingerprints and outputs of the tasks it
// waits for (so a change upstream re-runs what depends on it).
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
	r.mu.Lock()
	for _, up := range t.upstream {
		write(up.String())
		if d := r.finished(up); d != nil {
			write(d.fp)
			keys := make([]string, 0, len(d.outputs))
			for k := range d.outputs {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				write(k)
				write(d.outputs[k])
			}
		}
	}
	r.mu.Unlock()
	return hex.EncodeToString(h.Sum(nil)[:16])
}
