package dag

import (
	"container/heap"
	"context"
	"fmt"
	"runtime/debug"
)

// WalkOptions tune a walk. The zero value runs every ready node at once,
// stops at the first failure and starts ready nodes in insertion order.
type WalkOptions[K comparable] struct {
	// Limit is the most visits running at once; <= 0 means no limit.
	Limit int
	// Group, if set, gives a node's concurrency group ("" = none). It is
	// called once per node, when the node becomes ready.
	Group func(K) string
	// GroupLimit, if set, gives the most running visits of a group (called
	// once per group); <= 0 means no limit. It is not called for "".
	GroupLimit func(group string) int
	// KeepGoing keeps starting, after a failure, every node that does not
	// depend (transitively) on a failed node.
	KeepGoing bool
	// Less, if set, orders the ready nodes: the Less one starts first. Ties
	// go to the node added first.
	Less func(a, b K) bool
	// Start, if set, is called just before a visit starts, from the
	// goroutine that called Walk.
	Start func(K)

	// recorded, if set, is called from the goroutine that called Walk
	// right after a visit's result has been recorded (tests use it to know
	// what the walker has seen).
	recorded func(K, State)
}

// Walk visits every node of g once all its dependencies are Done, each visit
// in its own goroutine, and returns when no visit is running and none can
// start.
//
// Ready nodes start as soon as there is room: at most opts.Limit visits run
// at once, and at most opts.GroupLimit(group) of a group; a ready node whose
// group is full waits without taking a slot, and ready nodes of other groups
// start past it.
//
// A visit that returns nil is Done and may make its dependents ready; one
// that returns an error is Failed, and its dependents (transitively) are
// NotRun. Without opts.KeepGoing no visit starts after the first failure;
// visits already running finish with ctx untouched. With it, every node that
// does not depend on a failed node still runs.
//
// When ctx is cancelled no visit starts any more; running visits see the
// cancelled ctx, and one that then returns an error is Cancelled. A visit
// that panics is Failed with an error holding the panic value and stack.
//
// On a graph with a cycle Walk visits nothing: every node is NotRun and
// Errors holds a *CycleError[K] for the cycle's first node. Walk does not
// change g; a nil g is an empty graph. Group, GroupLimit, Less and Start are
// called from the goroutine that called Walk, never at the same time.
func Walk[K comparable](ctx context.Context, g *Graph[K], opts WalkOptions[K], visit func(ctx context.Context, k K) error) Report[K] {
	if g == nil {
		g = New[K]()
	}
	n := g.Len()
	r := Report[K]{
		States: make(map[K]State, n),
		Errors: make(map[K]error),
		// The graph's own keys, capped: nodes added to g later are
		// appended past them and never seen here (a copy was 32 bytes per
		// node of an engine's task ID at every walk).
		nodes: g.keys[:n:n],
		Order: make([]K, 0, n),
	}
	for _, k := range g.keys {
		r.States[k] = NotRun
	}
	if n == 0 {
		return r
	}
	if c := g.Cycle(); c != nil {
		r.Errors[c[0]] = &CycleError[K]{Path: c}
		return r
	}
	w := newWalker(g, opts, visit, &r)
	w.run(ctx)
	return r
}

// result is what a visit's goroutine sends back.
type result struct {
	node      int
	err       error
	cancelled bool
}

// group is a concurrency group with its own ready queue.
type group struct {
	limit   int      // <= 0: none
	running int      // visits of the group running now
	ready   nodeHeap // ready nodes of the group not started yet
	pos     int      // index in walker.eligible, -1 when not in it
}

func (gr *group) hasRoom() bool { return gr.limit <= 0 || gr.running < gr.limit }

// walker holds one walk's state. Only the goroutine that called Walk touches
// it; visits talk back through results.
type walker[K comparable] struct {
	g       *Graph[K]
	opts    WalkOptions[K]
	visit   func(context.Context, K) error
	report  *Report[K]
	pending []int    // dependencies of each node not Done yet
	groupOf []*group // each ready or started node's group
	groups  map[string]*group
	// eligible holds the groups with ready nodes and room, ordered by
	// their best ready node.
	eligible groupHeap
	running  int
	stopped  bool // a failure stopped the walk (fail fast)
	results  chan result
}

func newWalker[K comparable](g *Graph[K], opts WalkOptions[K], visit func(context.Context, K) error, r *Report[K]) *walker[K] {
	n := g.Len()
	slots := n
	if opts.Limit > 0 && opts.Limit < n {
		slots = opts.Limit
	}
	w := &walker[K]{
		g:       g,
		opts:    opts,
		visit:   visit,
		report:  r,
		pending: make([]int, n),
		groupOf: make([]*group, n),
		groups:  make(map[string]*group),
		results: make(chan result, slots),
	}
	w.eligible.before = w.before
	for i := range n {
		w.pending[i] = len(g.deps[i])
		if w.pending[i] == 0 {
			w.ready(i)
		}
	}
	return w
}

// before orders ready nodes: by opts.Less, then by insertion order.
func (w *walker[K]) before(a, b int) bool {
	if less := w.opts.Less; less != nil {
		ka, kb := w.g.keys[a], w.g.keys[b]
		if less(ka, kb) {
			return true
		}
		if less(kb, ka) {
			return false
		}
	}
	return a < b
}

func (w *walker[K]) groupFor(i int) *group {
	name := ""
	if w.opts.Group != nil {
		name = w.opts.Group(w.g.keys[i])
	}
	gr, ok := w.groups[name]
	if !ok {
		gr = &group{pos: -1, ready: nodeHeap{less: w.before}}
		if name != "" && w.opts.GroupLimit != nil {
			gr.limit = w.opts.GroupLimit(name)
		}
		w.groups[name] = gr
	}
	return gr
}

// ready queues node i, whose dependencies are all Done.
func (w *walker[K]) ready(i int) {
	gr := w.groupFor(i)
	w.groupOf[i] = gr
	gr.ready.push(i)
	w.refresh(gr)
}

// refresh puts gr in, moves it within or takes it out of eligible after its
// ready queue or its running count changed.
func (w *walker[K]) refresh(gr *group) {
	want := gr.ready.len() > 0 && gr.hasRoom()
	switch {
	case want && gr.pos < 0:
		heap.Push(&w.eligible, gr)
	case want:
		heap.Fix(&w.eligible, gr.pos)
	case gr.pos >= 0:
		heap.Remove(&w.eligible, gr.pos)
	}
}

func (w *walker[K]) run(ctx context.Context) {
	done := ctx.Done()
	for {
		if !w.stopped && ctx.Err() == nil {
			w.startReady(ctx)
		}
		if w.running == 0 {
			return
		}
		select {
		case res := <-w.results:
			w.record(res)
		case <-done:
			done = nil // nothing starts from now on; wait for the running visits
		}
	}
}

// startReady starts ready nodes while there is room overall, best first
// among the groups that have room.
func (w *walker[K]) startReady(ctx context.Context) {
	for (w.opts.Limit <= 0 || w.running < w.opts.Limit) && w.eligible.Len() > 0 {
		gr := w.eligible.groups[0]
		i := gr.ready.pop()
		gr.running++
		w.refresh(gr)
		w.running++
		k := w.g.keys[i]
		if w.opts.Start != nil {
			w.opts.Start(k)
		}
		go func() {
			err := call(ctx, w.visit, k)
			w.results <- result{node: i, err: err, cancelled: err != nil && ctx.Err() != nil}
		}()
	}
}

// call runs visit, turning a panic into an error.
func call[K comparable](ctx context.Context, visit func(context.Context, K) error, k K) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("visit %v: panic: %v\n%s", k, p, debug.Stack())
		}
	}()
	return visit(ctx, k)
}

func (w *walker[K]) record(res result) {
	i := res.node
	k := w.g.keys[i]
	w.running--
	gr := w.groupOf[i]
	gr.running--
	w.refresh(gr)
	w.report.Order = append(w.report.Order, k)
	var s State
	switch {
	case res.err == nil:
		s = Done
		for _, j := range w.g.dependents[i] {
			w.pending[j]--
			if w.pending[j] == 0 {
				w.ready(j)
			}
		}
	case res.cancelled:
		s = Cancelled
	default:
		s = Failed
		w.report.Errors[k] = res.err
		if !w.opts.KeepGoing {
			w.stopped = true
		}
	}
	w.report.States[k] = s
	if w.opts.recorded != nil {
		w.opts.recorded(k, s)
	}
}

// groupHeap is a container/heap of groups ordered by their best ready node.
type groupHeap struct {
	groups []*group
	before func(a, b int) bool
}

func (h *groupHeap) Len() int { return len(h.groups) }

func (h *groupHeap) Less(a, b int) bool {
	return h.before(h.groups[a].ready.top(), h.groups[b].ready.top())
}

func (h *groupHeap) Swap(a, b int) {
	h.groups[a], h.groups[b] = h.groups[b], h.groups[a]
	h.groups[a].pos = a
	h.groups[b].pos = b
}

func (h *groupHeap) Push(x any) {
	gr := x.(*group)
	gr.pos = len(h.groups)
	h.groups = append(h.groups, gr)
}

func (h *groupHeap) Pop() any {
	last := len(h.groups) - 1
	gr := h.groups[last]
	h.groups[last] = nil
	h.groups = h.groups[:last]
	gr.pos = -1
	return gr
}
