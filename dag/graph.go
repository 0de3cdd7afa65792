// Package dag is a generic directed acyclic graph and a parallel walker.
//
// A Graph holds nodes of any comparable type and edges "from runs before
// to". Walk visits every node once its dependencies have succeeded, with a
// sliding pool bounded overall and per concurrency group, fail-fast or
// keep-going, and reports the root causes of failures only.
//
// The package knows nothing of what the nodes stand for.
package dag

import (
	"maps"
	"slices"
)

// Graph is a directed graph of nodes of type K. An edge from -> to means
// that to depends on from: from runs first. Nodes and edges keep the order in
// which they were added, which makes every result of the package
// deterministic.
//
// The zero value is an empty graph ready to use. A Graph may be read by many
// goroutines at once (Walk only reads it) but must not be changed while it
// is read.
type Graph[K comparable] struct {
	index      map[K]int
	keys       []K
	deps       [][]int
	dependents [][]int
	edges      map[edge]struct{}
}

type edge struct{ from, to int }

// New returns an empty graph.
func New[K comparable]() *Graph[K] {
	return &Graph[K]{}
}

// Grow makes room for about nodes more nodes and edges more edges, so that
// a graph built to a size known beforehand is not rehashed and copied on
// the way (and holds no room it will not use).
func (g *Graph[K]) Grow(nodes, edges int) {
	if nodes > 0 {
		index := make(map[K]int, len(g.index)+nodes)
		maps.Copy(index, g.index)
		g.index = index
		g.keys = slices.Grow(g.keys, nodes)
		g.deps = slices.Grow(g.deps, nodes)
		g.dependents = slices.Grow(g.dependents, nodes)
	}
	if edges > 0 {
		all := make(map[edge]struct{}, len(g.edges)+edges)
		maps.Copy(all, g.edges)
		g.edges = all
	}
}

// Add adds node k if it is not there yet. Adding a node twice does nothing.
func (g *Graph[K]) Add(k K) {
	g.add(k)
}

func (g *Graph[K]) add(k K) int {
	if i, ok := g.index[k]; ok {
		return i
	}
	if g.index == nil {
		g.index = make(map[K]int)
	}
	i := len(g.keys)
	g.index[k] = i
	g.keys = append(g.keys, k)
	g.deps = append(g.deps, nil)
	g.dependents = append(g.dependents, nil)
	return i
}

// Connect records that to depends on from (from runs first). Missing nodes
// are added, from before to. A duplicate edge is ignored. Connect(k, k) makes
// a self-loop, which Cycle reports.
func (g *Graph[K]) Connect(from, to K) {
	f := g.add(from)
	t := g.add(to)
	e := edge{f, t}
	if _, ok := g.edges[e]; ok {
		return
	}
	if g.edges == nil {
		g.edges = make(map[edge]struct{})
	}
	g.edges[e] = struct{}{}
	g.deps[t] = append(g.deps[t], f)
	g.dependents[f] = append(g.dependents[f], t)
}

// Index returns k's position in insertion order (0 for the first node
// added) and whether k is in g.
func (g *Graph[K]) Index(k K) (int, bool) {
	i, ok := g.index[k]
	return i, ok
}

// Nodes returns every node in insertion order.
func (g *Graph[K]) Nodes() []K {
	return slices.Clone(g.keys)
}

// Len returns the number of nodes.
func (g *Graph[K]) Len() int {
	return len(g.keys)
}

// Deps returns the direct dependencies of k (the nodes that run before it),
// in the order the edges were added; nil if k has none or is not in g.
func (g *Graph[K]) Deps(k K) []K {
	i, ok := g.index[k]
	if !ok {
		return nil
	}
	return g.keysOf(g.deps[i])
}

// Dependents returns the nodes that depend directly on k, in the order the
// edges were added; nil if there are none or k is not in g.
func (g *Graph[K]) Dependents(k K) []K {
	i, ok := g.index[k]
	if !ok {
		return nil
	}
	return g.keysOf(g.dependents[i])
}

func (g *Graph[K]) keysOf(idx []int) []K {
	if len(idx) == 0 {
		return nil
	}
	out := make([]K, len(idx))
	for n, i := range idx {
		out[n] = g.keys[i]
	}
	return out
}
