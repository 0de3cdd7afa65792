package plans

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const selectorPlan = `name: sel
vars: {zone: b}
hosts:
  groups:
    masters: [m1, m2, m3]
    nodes: [{name: n1, address: n1, labels: {zone: b}}, {name: n2, address: n2}, m2]
    db: [{name: d1, address: local}]
steps:
  - id: s
    kind: shell
    on: %s
    with: {run: echo}
`

func TestSelectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		on   string
		want []string
	}{
		{"all", []string{"m1", "m2", "m3", "n1", "n2", "d1"}},
		{"all[0]", []string{"m1"}},
		{"all[-2:]", []string{"n2", "d1"}},
		{"masters", []string{"m1", "m2", "m3"}},
		{"nodes", []string{"m2", "n1", "n2"}}, // inventory order, not group order
		{"n2", []string{"n2"}},
		{"masters[0]", []string{"m1"}},
		{"masters[-1]", []string{"m3"}},
		{"masters[5]", []string{}},
		{"masters[-4]", []string{}},
		{"masters[1:]", []string{"m2", "m3"}},
		{"masters[:2]", []string{"m1", "m2"}},
		{"masters[-2:]", []string{"m2", "m3"}},
		{"masters[:]", []string{"m1", "m2", "m3"}},
		{"masters[2:1]", []string{}},
		{"masters[0:100]", []string{"m1", "m2", "m3"}},
		{"nodes[2]", []string{"m2"}},
		{"db", []string{"d1"}},
		{"'host.labels.zone == vars.zone'", []string{"n1"}},
		{"'\"masters\" in host.groups && host.index > 0'", []string{"m2", "m3"}},
		{"'len(host.groups) > 1'", []string{"m2"}},
		{"'host.name startsWith \"n\"'", []string{"n1", "n2"}},
		{"'false'", []string{}},
		{"'true'", []string{"m1", "m2", "m3", "n1", "n2", "d1"}},
		{"'len(groups.db) == 1 && host.address == \"local\"'", []string{"d1"}},
	}
	for _, tt := range tests {
		t.Run(tt.on, func(t *testing.T) {
			t.Parallel()
			p, err := Load("sel.yaml", []byte(fmt.Sprintf(selectorPlan, tt.on)), LoadOptions{Kinds: testKinds(t)})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, names(p.Steps[0].Targets)); diff != "" {
				t.Errorf("targets of on: %s (-want +got):\n%s", tt.on, diff)
			}
		})
	}
}

func TestSelectorErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		on   string
		want string
	}{
		{"nods", `sel.yaml:11:9: step "s": unknown group or host "nods" in on; groups: masters, nodes, db` + "\n\thint: did you mean nodes?"},
		{"m9", `unknown group or host "m9" in on`},
		{"masters[x]", `sel.yaml:11:9: step "s": bad index or slice "[x]" in on`},
		{"masters[]", `bad index or slice "[]" in on`},
		{"masters[1:2:3]", `bad index or slice "[1:2:3]" in on`},
		{"'host.name'", `sel.yaml:11:10: step "s": on: bad expression "host.name": expected bool, but got string`},
		{"'host.nme == \"x\"'", `sel.yaml:11:15: step "s": on: bad expression "host.nme == \"x\"": type plans.HostView has no field nme`},
		{"'  groups.masters[9].name == \"x\"'", `sel.yaml:11:9: step "s": on: evaluating "groups.masters[9].name == \"x\"" for host m1: index out of range`},
	}
	for _, tt := range tests {
		_, err := Load("sel.yaml", []byte(fmt.Sprintf(selectorPlan, tt.on)), LoadOptions{Kinds: testKinds(t)})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("on: %s: error\n%v\nwant it to contain\n%s", tt.on, err, tt.want)
		}
	}
}

func TestSliceBounds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec      string
		n, lo, hi int
		ok        bool
	}{
		{"0", 3, 0, 1, true},
		{" -1 ", 3, 2, 3, true},
		{"3", 3, 0, 0, true},
		{"1:", 3, 1, 3, true},
		{":-1", 3, 0, 2, true},
		{"-10:10", 3, 0, 3, true},
		{"2:1", 3, 2, 2, true},
		{"", 3, 0, 0, false},
		{"a", 3, 0, 0, false},
		{"1:2:3", 3, 0, 0, false},
		{"99999999999999999999", 3, 0, 0, false},
	}
	for _, tt := range tests {
		lo, hi, ok := sliceBounds(tt.spec, tt.n)
		if lo != tt.lo || hi != tt.hi || ok != tt.ok {
			t.Errorf("sliceBounds(%q, %d) = %d, %d, %v; want %d, %d, %v", tt.spec, tt.n, lo, hi, ok, tt.lo, tt.hi, tt.ok)
		}
	}
}
