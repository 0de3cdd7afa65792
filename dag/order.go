package dag

import (
	"fmt"
	"slices"
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
	var first []int
	g.cycles(func(path []int) bool {
		first = path
		return false
	})
	return g.keysOf(first)
}

// Cycles returns every cycle the search of Cycle closes, in the order it
// finds them, each as Cycle returns one; Cycles()[0] is Cycle(). The
// search runs once over the whole graph, so a graph with several cycles
// reports each of them at least once (it lists the cycles closed by the
// search's back edges, not every cycle a graph may hold).
func (g *Graph[K]) Cycles() [][]K {
	var out [][]K
	g.cycles(func(path []int) bool {
		out = append(out, g.keysOf(path))
		return true
	})
	return out
}

const (
	white = iota // not seen
	grey         // on the search path
	black        // finished
)

// cycles runs the depth-first search and gives each back edge's cycle to
// found, until found returns false.
func (g *Graph[K]) cycles(found func(path []int) bool) {
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
				if !found(append(path, c)) {
					return
				}
			}
		}
	}
}

// DependsOn reports whether k depends on dep, directly or not. It searches
// only the part of the graph k depends on, and stops when it finds dep.
func (g *Graph[K]) DependsOn(k, dep K) bool {
	i, ok := g.index[k]
	if !ok {
		return false
	}
	j, ok := g.index[dep]
	if !ok {
		return false
	}
	seen := map[int]bool{}
	stack := []int{i}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range g.deps[n] {
			if d == j {
				return true
			}
			if !seen[d] {
				seen[d] = true
				stack = append(stack, d)
			}
		}
	}
	return false
}

// Ancestors returns every node k depends on, directly or not, in insertion
// order; nil if there is none or k is not in g. It takes time linear in
// the size of the graph it reaches, so a caller asks only for the nodes it
// needs: the ancestors of every node of a long chain are quadratic in its
// length.
func (g *Graph[K]) Ancestors(k K) []K {
	i, ok := g.index[k]
	if !ok {
		return nil
	}
	seen := make([]bool, len(g.keys))
	var found []int
	queue := []int{i}
	for len(queue) > 0 {
		n := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, d := range g.deps[n] {
			if !seen[d] {
				seen[d] = true
				found = append(found, d)
				queue = append(queue, d)
			}
		}
	}
	slices.Sort(found)
	return g.keysOf(found)
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
