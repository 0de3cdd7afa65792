package plans

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/steps"
)

// A step that reads `steps` dynamically is handed every step it needs,
// directly or not, in plan order; the others get none.
func TestUpstreamOfDynamicReaders(t *testing.T) {
	t.Parallel()
	src := `name: x
hosts: {groups: {nodes: [{name: h1, address: local}]}}
vars: {src: a}
steps:
  - {id: d, kind: shell, needs: [b, c], with: {run: 'echo ${{ steps[vars.src].outputs.v }}'}}
  - {id: c, kind: shell, needs: [a], with: {run: echo}}
  - {id: b, kind: shell, needs: [a], with: {run: 'echo ${{ steps.a.outputs.v }}'}}
  - {id: a, kind: shell, with: {run: echo}}
`
	p, err := Load("x.yaml", []byte(src), LoadOptions{Kinds: steps.Builtin()})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, s := range p.Steps {
		got[s.ID] = s.Upstream
	}
	want := map[string][]string{"d": {"c", "b", "a"}, "c": nil, "b": nil, "a": nil}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Upstream (-want +got):\n%s", d)
	}
}

func chainPlan(n int) []byte {
	var b strings.Builder
	b.WriteString("name: chain\nhosts: {groups: {nodes: [{name: h1, address: local}]}}\nsteps:\n")
	for i := range n {
		run := "echo"
		if i >= 2 {
			run = fmt.Sprintf("echo ${{ steps.s%05d.outputs.v }}", i-2)
		}
		fmt.Fprintf(&b, "  - id: s%05d\n    kind: shell\n    with: {run: '%s'}\n", i, run)
		if i > 0 {
			fmt.Fprintf(&b, "    needs: [s%05d]\n", i-1)
		}
	}
	return []byte(b.String())
}

// BenchmarkLoadChain10k loads 10,000 chained steps, each reading the
// outputs of the step two before it (a transitive need).
func BenchmarkLoadChain10k(b *testing.B) {
	src := chainPlan(10000)
	kinds := steps.Builtin()
	for b.Loop() {
		if _, err := Load("chain.yaml", src, LoadOptions{Kinds: kinds}); err != nil {
			b.Fatal(err)
		}
	}
}

// Every cycle is reported, from the step first in the file, at its needs
// entry, in the direction of needs.
func TestEveryCycleReported(t *testing.T) {
	t.Parallel()
	src := `name: x
steps:
  - {id: a, kind: shell, needs: [b, d], with: {run: echo}}
  - {id: b, kind: shell, needs: [c], with: {run: echo}}
  - {id: c, kind: shell, needs: [a], with: {run: echo}}
  - {id: d, kind: shell, needs: [e], with: {run: echo}}
  - {id: e, kind: shell, needs: [a, d], with: {run: echo}}
  - {id: f, kind: shell, needs: [g], with: {run: echo}}
  - {id: g, kind: shell, needs: [f], with: {run: echo}}
`
	_, err := Load("x.yaml", []byte(src), LoadOptions{Kinds: steps.Builtin()})
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Load: %v, want an ErrorList", err)
	}
	var got []string
	for _, e := range list {
		got = append(got, fmt.Sprintf("%d:%d: %s", e.Pos.Line, e.Pos.Col, e.Msg))
	}
	want := []string{
		"3:34: cycle: a -> b -> c -> a",
		"3:37: cycle: a -> d -> e -> a",
		"6:34: cycle: d -> e -> d",
		"8:34: cycle: f -> g -> f",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("errors (-want +got):\n%s", d)
	}
}
