package engine

import "github.com/sealflow/sealflow/plans"

// Upstream returns, for every task of p, the tasks it waits for by the
// ready rule (the edges a run walks), for views that draw or measure the
// run after the fact.
func Upstream(p *plans.Plan) map[TaskID][]TaskID {
	r := &runner{plan: p, on: newHostSets(p)}
	out := map[TaskID][]TaskID{}
	for _, s := range p.Steps {
		for _, h := range s.Targets {
			out[TaskID{Step: s.ID, Host: h.Name}] = r.upstreamOf(s, h)
		}
	}
	return out
}
