package dag

import (
	"fmt"
	"strings"
)

// CycleError reports a cycle. Path starts and ends with the same node and
// each node in it runs before the next one (Connect(Path[i], Path[i+1]) was
// called).
type CycleError[K comparable] struct {
	Path []K
}

// Error returns "cycle: a -> b -> c -> a".
func (e *CycleError[K]) Error() string {
	var b strings.Builder
	b.WriteString("cycle: ")
	for i, k := range e.Path {
		if i > 0 {
			b.WriteString(" -> ")
		}
		fmt.Fprint(&b, k)
	}
	return b.String()
}

// Cycle returns nil if g is acyclic, or else one cycle as a path whose first
// and last nodes are the same, e.g. [a b c a], where each node runs before
// the next (a self-loop is [a a]). The cycle is the first one a depth-first
// search finds when it takes nodes and edges in insertion order, so the
// result does not change from one call to the next.
func (g *Graph[K]) Cycle() []K {
	return g.keysOf(g.cycle())
}

const (
	white = iota // not seen
	grey         // on the search path
	black        // finished
)

func (g *Graph[K]) cycle() []int {
	type frame struct{ node, next int }
	n := len(g.keys)
	color := make([]uint8, n)
	depth := make([]int, n) // position of a grey node on the stack
	var stack []frame
	for root := range n {
		if color[root] != white {
			continue
		}
		color[root] = grey
		depth[root] = 0
		stack = append(stack[:0], frame{node: root})
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			out := g.dependents[top.node]
			if top.next == len(out) {
				color[top.node] = black
				stack = stack[:len(stack)-1]
				continue
			}
			c := out[top.next]
			top.next++
			switch color[c] {
			case white:
				color[c] = grey
				depth[c] = len(stack)
				stack = append(stack, frame{node: c})
			case grey:
				path := make([]int, 0, len(stack)-depth[c]+1)
				for _, f := range stack[depth[c]:] {
					path = append(path, f.node)
				}
				return append(path, c)
			}
		}
	}
	return nil
}

// TopoSort returns every node with each node after all its dependencies.
// Among the nodes whose dependencies are placed, the one added first comes
// first, so a graph whose nodes were added in dependency order sorts to
// Nodes() unchanged. On a cycle it returns a *CycleError[K].
func (g *Graph[K]) TopoSort() ([]K, error) {
	n := len(g.keys)
	pending := make([]int, n)
	ready := nodeHeap{less: func(a, b int) bool { return a < b }}
	for i := range n {
		pending[i] = len(g.deps[i])
		if pending[i] == 0 {
			ready.push(i)
		}
	}
	out := make([]K, 0, n)
	for ready.len() > 0 {
		i := ready.pop()
		out = append(out, g.keys[i])
		for _, j := range g.dependents[i] {
			pending[j]--
			if pending[j] == 0 {
				ready.push(j)
			}
		}
	}
	if len(out) < n {
		return nil, &CycleError[K]{Path: g.Cycle()}
	}
	return out, nil
}
