package engine

import (
	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/plans"
)

// StartHosts returns the hosts a run of opts.Plan starts on: those of the
// tasks that are ready at once (steps that need none and have no
// condition) on hosts within opts.Limit, less the tasks the journal's
// records show done or skipped and those given to --skip, at most opts.Parallel (default 64) hosts,
// in the order the run starts their tasks. A caller connects to them
// while the run is being set up; a host that only later steps reach may
// not be up yet, and is left to its first task. opts.State and
// opts.Connect are not used; a limit that names nothing gives none.
func StartHosts(opts Options, records []journal.Record) []*plans.Host {
	if opts.Plan == nil {
		return nil
	}
	n := opts.Parallel
	if n <= 0 {
		n = defaultParallel
	}
	r := &runner{opts: opts, plan: opts.Plan}
	included, err := r.limitHosts()
	if err != nil {
		return nil
	}
	prior, _ := replay(records)
	skip := map[TaskID]bool{}
	for _, id := range opts.Skip {
		skip[id] = true
	}
	seen := map[string]bool{}
	var out []*plans.Host
	for _, s := range opts.Plan.Steps {
		if len(s.Needs) > 0 || s.When != "" {
			continue
		}
		for _, h := range s.Targets {
			if len(out) == n {
				return out
			}
			id := TaskID{Step: s.ID, Host: h.Name}
			if seen[h.Name] || !included[h.Name] || skip[id] {
				continue
			}
			if p := prior[id]; p != nil && (p.state == journal.Done || p.state == journal.Skipped) {
				continue
			}
			seen[h.Name] = true
			out = append(out, h)
		}
	}
	return out
}
