package dag

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
)

// chains10k is 100 chains of 100 nodes; node i of chain c is in group
// (c+i) % 100, so every chain crosses all 100 groups.
func chains10k() (*Graph[int], func(int) string) {
	const chains, length = 100, 100
	g := New[int]()
	names := make([]string, chains*length)
	for c := range chains {
		for i := range length {
			k := c*length + i
			g.Add(k)
			names[k] = fmt.Sprint("g", (c+i)%100)
			if i > 0 {
				g.Connect(k-1, k)
			}
		}
	}
	return g, func(k int) string { return names[k] }
}

// dense10k is 10,000 nodes and 100,000 edges, each from an earlier node.
func dense10k() *Graph[int] {
	const n, perNode = 10_000, 10
	rng := rand.New(rand.NewPCG(3, 4))
	g := New[int]()
	for i := range n {
		g.Add(i)
	}
	for edges := 0; edges < n*perNode; {
		to := 1 + rng.IntN(n-1)
		from := rng.IntN(to)
		before := len(g.deps[to])
		g.Connect(from, to)
		if len(g.deps[to]) > before {
			edges++
		}
	}
	return g
}

func benchWalk(b *testing.B, g *Graph[int], opts WalkOptions[int]) {
	b.ReportAllocs()
	ctx := context.Background()
	visit := func(context.Context, int) error { return nil }
	for b.Loop() {
		if r := Walk(ctx, g, opts, visit); !r.OK() {
			b.Fatalf("walk not OK: %v", r.Errors)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*g.Len()), "ns/node")
}

func BenchmarkWalk10k(b *testing.B) {
	g, group := chains10k()
	benchWalk(b, g, WalkOptions[int]{
		Limit:      32,
		Group:      group,
		GroupLimit: func(string) int { return 2 },
	})
}

func BenchmarkWalk10kNoLimits(b *testing.B) {
	g, _ := chains10k()
	benchWalk(b, g, WalkOptions[int]{})
}

func BenchmarkWalk10kDense(b *testing.B) {
	benchWalk(b, dense10k(), WalkOptions[int]{Limit: 32})
}

func BenchmarkWalk10kDenseLess(b *testing.B) {
	g := dense10k()
	names := make([]string, g.Len())
	for k := range names {
		names[k] = fmt.Sprint("g", k%100)
	}
	benchWalk(b, g, WalkOptions[int]{
		Limit:      32,
		Less:       func(a, b int) bool { return a%7 < b%7 },
		Group:      func(k int) string { return names[k] },
		GroupLimit: func(string) int { return 4 },
	})
}

func BenchmarkTopoSort10kDense(b *testing.B) {
	g := dense10k()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.TopoSort(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCycle10kDense(b *testing.B) {
	g := dense10k()
	b.ReportAllocs()
	for b.Loop() {
		if c := g.Cycle(); c != nil {
			b.Fatal(c)
		}
	}
}
