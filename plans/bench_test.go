package plans

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkLoadLarge loads a plan with 2,000 hosts in two groups and
// steps selecting them by group, slice and expression.
func BenchmarkLoadLarge(b *testing.B) {
	var src strings.Builder
	src.WriteString("name: large\nvars: {v: x}\nhosts:\n  groups:\n    masters: [")
	for i := 0; i < 3; i++ {
		fmt.Fprintf(&src, "{name: m%d, address: 10.1.0.%d}, ", i, i)
	}
	src.WriteString("]\n    nodes:\n")
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(&src, "      - {name: n%d, address: 10.2.%d.%d, labels: {rack: r%d}}\n", i, i/250, i%250, i%10)
	}
	src.WriteString(`steps:
  - {id: a, kind: shell, with: {run: 'echo ${{ vars.v }} ${{ host.name }}'}}
  - {id: b, kind: shell, on: 'nodes[10:]', needs: [a], with: {run: echo}}
  - {id: c, kind: shell, on: 'host.labels.rack == "r3"', needs: [b], when: 'host.index % 2 == 0', with: {run: echo}}
`)
	data := []byte(src.String())
	kinds := testKinds(b)
	b.ReportAllocs()
	for b.Loop() {
		p, err := Load("large.yaml", data, LoadOptions{Kinds: kinds})
		if err != nil {
			b.Fatal(err)
		}
		if n := len(p.Step("c").Targets); n != 200 {
			b.Fatalf("c has %d targets, want 200", n)
		}
	}
}
