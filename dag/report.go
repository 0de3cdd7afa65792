package dag

import "fmt"

// State is what became of a node in a walk.
type State int

const (
	// NotRun: the visit never started (a dependency did not succeed, the
	// walk stopped after a failure, the context was cancelled or the graph
	// has a cycle).
	NotRun State = iota
	// Done: the visit returned nil.
	Done
	// Failed: the visit returned an error.
	Failed
	// Cancelled: the visit returned an error after the walk's context was
	// cancelled.
	Cancelled
)

// String returns "not run", "done", "failed" or "cancelled".
func (s State) String() string {
	switch s {
	case NotRun:
		return "not run"
	case Done:
		return "done"
	case Failed:
		return "failed"
	case Cancelled:
		return "cancelled"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Report is the outcome of a walk.
type Report[K comparable] struct {
	// States holds every node of the graph.
	States map[K]State
	// Errors holds the root causes only: the errors of the Failed nodes (or a
	// *CycleError[K] for one node of a cycle). Nodes that did not run
	// because of a failure have no entry.
	Errors map[K]error
	// Order lists the visited nodes in the order their visits returned.
	Order []K

	nodes []K // the graph's nodes in insertion order
}

// Failed returns the Failed nodes in graph insertion order.
func (r Report[K]) Failed() []K { return r.with(Failed) }

// NotRun returns the nodes that never started, in graph insertion order.
func (r Report[K]) NotRun() []K { return r.with(NotRun) }

// Cancelled returns the Cancelled nodes in graph insertion order.
func (r Report[K]) Cancelled() []K { return r.with(Cancelled) }

// OK reports whether every node is Done (true for an empty graph).
func (r Report[K]) OK() bool {
	for _, s := range r.States {
		if s != Done {
			return false
		}
	}
	return true
}

func (r Report[K]) with(s State) []K {
	var out []K
	for _, k := range r.nodes {
		if r.States[k] == s {
			out = append(out, k)
		}
	}
	return out
}
