package engine

import (
	"maps"
	"slices"

	"github.com/sealflow/sealflow/plans"
	"github.com/sealflow/sealflow/steps"
)

// outputs are a finished task's outputs as the run keeps them: key, value,
// key, value, ... sorted by key. At thousands of hosts one map per task
// was most of the run's memory (a map of one output takes about 300
// bytes, this slice 32); a map is made only for an expression that reads
// the outputs, and dropped with its environment.
type outputs []string

func compact(m steps.Outputs) outputs {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	o := make(outputs, 0, 2*len(m))
	for _, k := range keys {
		o = append(o, k, m[k])
	}
	return o
}

// each calls fn with every output in key order.
func (o outputs) each(fn func(k, v string)) {
	for i := 0; i+1 < len(o); i += 2 {
		fn(o[i], o[i+1])
	}
}

// toMap returns the outputs as a new map (never nil), for expressions.
func (o outputs) toMap() map[string]string {
	m := make(map[string]string, len(o)/2)
	o.each(func(k, v string) { m[k] = v })
	return m
}

// stepHosts holds the outputs of a step's finished tasks by host, as
// `steps.X.hosts` shows them. It is made for a step when an environment
// first asks for it, not for every step: its maps are what the compact
// outputs save. The map an environment is given (view) is never modified
// afterwards, so it stays valid while other tasks finish; it is copied
// only when an environment asks for it after a task finished, not at
// every finish (which made a run quadratic in the number of hosts).
type stepHosts struct {
	all  map[string]plans.HostOutputs // owned by the runner, under its mu
	snap map[string]plans.HostOutputs // handed out; nil when all changed since
}

func (hs *stepHosts) add(host string, o outputs) {
	hs.all[host] = plans.HostOutputs{Outputs: o.toMap()}
	hs.snap = nil
}

// view returns the step's finished hosts as of now (nil for none).
func (hs *stepHosts) view() map[string]plans.HostOutputs {
	if len(hs.all) == 0 {
		return nil
	}
	if hs.snap == nil {
		hs.snap = maps.Clone(hs.all)
	}
	return hs.snap
}
