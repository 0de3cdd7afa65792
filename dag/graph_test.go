package dag

import (
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// build makes a graph from nodes (added first, in order) and edges
// "from>to".
func build(nodes []string, edges ...[2]string) *Graph[string] {
	g := New[string]()
	for _, n := range nodes {
		g.Add(n)
	}
	for _, e := range edges {
		g.Connect(e[0], e[1])
	}
	return g
}

func TestGraphBasics(t *testing.T) {
	t.Parallel()
	g := New[string]()
	g.Add("b")
	g.Add("a")
	g.Add("b") // idempotent
	g.Connect("a", "c")
	g.Connect("b", "c")
	g.Connect("a", "c") // duplicate
	g.Connect("d", "e") // adds d then e
	g.Connect("c", "e")

	if diff := cmp.Diff([]string{"b", "a", "c", "d", "e"}, g.Nodes()); diff != "" {
		t.Errorf("Nodes (-want +got):\n%s", diff)
	}
	if got := g.Len(); got != 5 {
		t.Errorf("Len = %d, want 5", got)
	}
	tests := []struct {
		node       string
		deps, dnts []string
	}{
		{"a", nil, []string{"c"}},
		{"b", nil, []string{"c"}},
		{"c", []string{"a", "b"}, []string{"e"}},
		{"d", nil, []string{"e"}},
		{"e", []string{"d", "c"}, nil},
		{"missing", nil, nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.deps, g.Deps(tt.node)); diff != "" {
			t.Errorf("Deps(%s) (-want +got):\n%s", tt.node, diff)
		}
		if diff := cmp.Diff(tt.dnts, g.Dependents(tt.node)); diff != "" {
			t.Errorf("Dependents(%s) (-want +got):\n%s", tt.node, diff)
		}
	}

	// Results are copies: changing them leaves the graph alone.
	g.Nodes()[0] = "x"
	g.Deps("c")[0] = "x"
	if got := g.Nodes()[0]; got != "b" {
		t.Errorf("Nodes()[0] after changing a copy = %q, want b", got)
	}
	if got := g.Deps("c")[0]; got != "a" {
		t.Errorf("Deps(c)[0] after changing a copy = %q, want a", got)
	}
}

func TestZeroGraph(t *testing.T) {
	t.Parallel()
	var g Graph[int]
	if g.Len() != 0 || g.Nodes() != nil || g.Cycle() != nil || g.Deps(1) != nil {
		t.Fatalf("zero graph is not empty")
	}
	g.Connect(1, 2)
	if diff := cmp.Diff([]int{1, 2}, g.Nodes()); diff != "" {
		t.Errorf("Nodes (-want +got):\n%s", diff)
	}
	order, err := g.TopoSort()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{1, 2}, order); diff != "" {
		t.Errorf("TopoSort (-want +got):\n%s", diff)
	}
}

func TestCycle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		nodes []string
		edges [][2]string
		want  []string
	}{
		{name: "empty"},
		{name: "single", nodes: []string{"a"}},
		{name: "chain", edges: [][2]string{{"a", "b"}, {"b", "c"}}},
		{name: "diamond", edges: [][2]string{{"a", "b"}, {"a", "c"}, {"b", "d"}, {"c", "d"}}},
		{name: "self loop", edges: [][2]string{{"a", "b"}, {"b", "b"}}, want: []string{"b", "b"}},
		{name: "two", edges: [][2]string{{"a", "b"}, {"b", "a"}}, want: []string{"a", "b", "a"}},
		{
			name:  "three",
			edges: [][2]string{{"a", "b"}, {"b", "c"}, {"c", "a"}},
			want:  []string{"a", "b", "c", "a"},
		},
		{
			name:  "behind an acyclic prefix",
			edges: [][2]string{{"s", "t"}, {"s", "x"}, {"x", "y"}, {"y", "z"}, {"z", "x"}},
			want:  []string{"x", "y", "z", "x"},
		},
		{
			name:  "first of two in insertion order",
			nodes: []string{"p", "a"},
			edges: [][2]string{{"a", "b"}, {"b", "a"}, {"p", "q"}, {"q", "r"}, {"r", "p"}},
			want:  []string{"p", "q", "r", "p"},
		},
		{
			name:  "cycle reached late in a node's edges",
			edges: [][2]string{{"a", "b"}, {"a", "c"}, {"b", "d"}, {"c", "d"}, {"d", "e"}, {"e", "c"}},
			want:  []string{"d", "e", "c", "d"}, // a b d e c, then c -> d closes it
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := build(tt.nodes, tt.edges...)
			got := g.Cycle()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("Cycle (-want +got):\n%s", diff)
			}
			// Deterministic.
			if diff := cmp.Diff(got, g.Cycle()); diff != "" {
				t.Errorf("second Cycle differs (-first +second):\n%s", diff)
			}
			_, err := g.TopoSort()
			var ce *CycleError[string]
			if tt.want == nil {
				if err != nil {
					t.Errorf("TopoSort error %v on an acyclic graph", err)
				}
				return
			}
			if !errors.As(err, &ce) {
				t.Fatalf("TopoSort error = %v, want a *CycleError", err)
			}
			if diff := cmp.Diff(tt.want, ce.Path); diff != "" {
				t.Errorf("CycleError.Path (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCycles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		nodes []string
		edges [][2]string
		want  [][]string
	}{
		{name: "acyclic", edges: [][2]string{{"a", "b"}, {"a", "c"}, {"b", "d"}, {"c", "d"}}},
		{name: "one", edges: [][2]string{{"a", "b"}, {"b", "a"}}, want: [][]string{{"a", "b", "a"}}},
		{
			name:  "two apart, in insertion order",
			nodes: []string{"p", "a"},
			edges: [][2]string{{"a", "b"}, {"b", "a"}, {"p", "q"}, {"q", "r"}, {"r", "p"}},
			want:  [][]string{{"p", "q", "r", "p"}, {"a", "b", "a"}},
		},
		{
			name:  "two through one node",
			edges: [][2]string{{"a", "b"}, {"b", "a"}, {"a", "c"}, {"c", "a"}, {"c", "c"}},
			want:  [][]string{{"a", "b", "a"}, {"a", "c", "a"}, {"c", "c"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := build(tt.nodes, tt.edges...)
			got := g.Cycles()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("Cycles (-want +got):\n%s", diff)
			}
			var first []string
			if len(got) > 0 {
				first = got[0]
			}
			if diff := cmp.Diff(first, g.Cycle()); diff != "" {
				t.Errorf("Cycle is not the first of Cycles (-first +Cycle):\n%s", diff)
			}
		})
	}
}

func TestAncestors(t *testing.T) {
	t.Parallel()
	// Insertion order a..f; edges added out of that order.
	g := build([]string{"a", "b", "c", "d", "e", "f"},
		[2]string{"c", "e"}, [2]string{"a", "c"}, [2]string{"b", "d"}, [2]string{"d", "e"}, [2]string{"a", "d"}, [2]string{"e", "f"})
	for k, want := range map[string][]string{
		"a":       nil,
		"c":       {"a"},
		"d":       {"a", "b"},
		"f":       {"a", "b", "c", "d", "e"},
		"missing": nil,
	} {
		if diff := cmp.Diff(want, g.Ancestors(k)); diff != "" {
			t.Errorf("Ancestors(%s) (-want +got):\n%s", k, diff)
		}
		for _, n := range g.Nodes() {
			if got, want := g.DependsOn(k, n), slices.Contains(want, n); got != want {
				t.Errorf("DependsOn(%s, %s) = %v, want %v", k, n, got, want)
			}
		}
	}
	if g.DependsOn("f", "missing") || g.DependsOn("missing", "a") {
		t.Error("DependsOn is true for a node not in the graph")
	}
}

func TestCycleErrorMessage(t *testing.T) {
	t.Parallel()
	g := build(nil, [2]string{"a", "b"}, [2]string{"b", "c"}, [2]string{"c", "a"})
	_, err := g.TopoSort()
	if err == nil {
		t.Fatal("TopoSort: no error on a cycle")
	}
	if got, want := err.Error(), "cycle: a -> b -> c -> a"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	ints := &CycleError[int]{Path: []int{7, 7}}
	if got, want := ints.Error(), "cycle: 7 -> 7"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestTopoSort(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		nodes []string
		edges [][2]string
		want  []string
	}{
		{name: "empty", want: []string{}},
		{name: "no edges keeps insertion order", nodes: []string{"c", "a", "b"}, want: []string{"c", "a", "b"}},
		{
			name:  "already in dependency order is unchanged",
			nodes: []string{"a", "b", "c", "d"},
			edges: [][2]string{{"a", "c"}, {"b", "d"}, {"c", "d"}},
			want:  []string{"a", "b", "c", "d"},
		},
		{
			name:  "dependency added later moves ahead",
			nodes: []string{"app", "db", "net"},
			edges: [][2]string{{"db", "app"}, {"net", "db"}},
			want:  []string{"net", "db", "app"},
		},
		{
			name:  "earliest ready first",
			nodes: []string{"x", "a", "b", "c"},
			edges: [][2]string{{"c", "x"}, {"a", "b"}},
			want:  []string{"a", "b", "c", "x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := build(tt.nodes, tt.edges...)
			got, err := g.TopoSort()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("TopoSort (-want +got):\n%s", diff)
			}
			again, _ := g.TopoSort()
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("second TopoSort differs:\n%s", diff)
			}
		})
	}
}

func TestStateString(t *testing.T) {
	t.Parallel()
	for s, want := range map[State]string{
		NotRun: "not run", Done: "done", Failed: "failed", Cancelled: "cancelled", State(9): "State(9)",
	} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

// TestGraphIndexAndGrow: Index is the insertion position; Grow, before or
// after nodes are added, keeps nodes, edges and duplicate detection.
func TestGraphIndexAndGrow(t *testing.T) {
	t.Parallel()
	g := New[string]()
	g.Add("x")
	g.Connect("x", "y")
	g.Grow(3, 2)
	g.Connect("x", "y") // still a duplicate after Grow
	g.Connect("y", "z")
	g.Grow(1, 0)
	g.Add("w")
	for want, k := range []string{"x", "y", "z", "w"} {
		if i, ok := g.Index(k); !ok || i != want {
			t.Errorf("Index(%q) = %d, %v; want %d, true", k, i, ok, want)
		}
	}
	if i, ok := g.Index("none"); ok {
		t.Errorf("Index of a missing node = %d, true; want false", i)
	}
	if diff := cmp.Diff([]string{"x"}, g.Deps("y")); diff != "" {
		t.Errorf("Deps(y) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"y"}, g.Dependents("x")); diff != "" {
		t.Errorf("Dependents(x) (-want +got):\n%s", diff)
	}
}
