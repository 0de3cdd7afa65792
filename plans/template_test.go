package plans

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/steps"
)

const templatePlan = `name: tmpl
vars: {v: "1.29", n: 3, none: null, list: [a, b], m: {k: v}}
hosts:
  groups:
    g: [{name: h1, address: 127.0.0.1, labels: {role: web}}]
steps:
  - id: s
    kind: typed
    with:
      %s
`

// planWith returns templatePlan with param: value (and count: 1 when the
// param is another one, count being required).
func planWith(param, value string) []byte {
	line := param + ": " + value
	if param != "count" {
		line = "count: 1\n      " + line
	}
	return []byte(fmt.Sprintf(templatePlan, line))
}

func TestInterpolation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		param, value string
		want         any
	}{
		{"note", `'plain'`, "plain"},
		{"note", `'v${{ vars.v }}'`, "v1.29"},
		{"note", `'${{ vars.n }}'`, "3"},
		{"note", `'[${{ vars.none }}]'`, "[]"},
		{"note", `'${{ vars.none }}'`, ""},
		{"note", `'$${{ vars.v }} and ${{vars.v}}'`, "${{ vars.v }} and 1.29"},
		{"note", `'$${{ only'`, "${{ only"},
		{"note", `'${{ host.labels.role }}-${{ host.index }}-${{ len(groups.g) }}'`, "web-0-1"},
		{"note", `'x ${{ vars.list }}'`, `x ["a","b"]`},
		{"note", `'m=${{ vars.m }}'`, `m={"k":"v"}`},
		{"note", `'${{ "}" }}'`, "}"},
		{"note", "|\n        a ${{ vars.v }}\n        b", "a 1.29\nb\n"},
		{"count", `'${{ vars.n + 1 }}'`, 4},
		{"count", `'1${{ vars.n }}'`, 13},
		{"force", `'${{ vars.n > 2 }}'`, true},
		{"wait", `'${{ vars.n }}s'`, 3 * 1e9},
		{"names", `'${{ vars.list }}'`, []string{"a", "b"}},
		{"names", `['${{ vars.v }}', x]`, []string{"1.29", "x"}},
		{"names", `'${{ vars.none }}'`, []string{}},
		{"labels", `'${{ vars.m }}'`, map[string]string{"k": "v"}},
		{"labels", `{a: '${{ vars.n }}', b: 2}`, map[string]string{"a": "3", "b": "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.param+"="+tt.value, func(t *testing.T) {
			t.Parallel()
			p, err := Load("t.yaml", planWith(tt.param, tt.value), LoadOptions{Kinds: testKinds(t)})
			if err != nil {
				t.Fatal(err)
			}
			params, err := p.Steps[0].Render(p.NewEnv(p.Host("h1")))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if tt.param == "wait" {
				want = fmt.Sprint(want)
				if d, ok := params["wait"]; ok {
					params["wait"] = fmt.Sprint(d.(interface{ Seconds() float64 }).Seconds() * 1e9)
				}
			}
			if diff := cmp.Diff(want, params[tt.param]); diff != "" {
				t.Errorf("%s: %s (-want +got):\n%s", tt.param, tt.value, diff)
			}
		})
	}
}

func TestTemplateLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		param, value string
		want         string
	}{
		{"note", `'a ${{ vars.v'`, `t.yaml:11:16: step "s": with.note: ${{ without a closing }}`},
		{"note", `'${{ hots.name }}'`, `t.yaml:11:18: step "s": with.note: bad expression "hots.name": unknown name hots`},
		{"note", `"a\tb ${{ hots }}"`, `t.yaml:11:13: step "s": with.note: bad expression "hots": unknown name hots`},
		{"count", `'${{ vars.n }}x'`, ``},
		{"count", `[1]`, `t.yaml:10:14: step "s": with.count: want an integer, got list`},
		{"force", `'yes'`, `t.yaml:11:14: step "s": with.force: want true or false`},
		{"names", `{a: b}`, `t.yaml:11:14: step "s": with.names: want a list of strings, got map`},
		{"names", `['${{ vars.v }}', [x]]`, `t.yaml:11:14: step "s": with.names: item 1: want a string, got list`},
		{"labels", `['${{ vars.v }}']`, `t.yaml:11:15: step "s": with.labels: want a map of strings, got list`},
		{"wait", `5`, `t.yaml:11:13: step "s": with.wait: want a duration such as 30s or 5m, got integer`},
		{"note", `'${{ steps.s.outputs.x }}'`, `t.yaml:11:18: step s reads its own outputs`},
		{"note", `'h=${{ host }}'`, `t.yaml:11:20: step "s": with.note: ${{ host }} is a host object; it cannot be pasted into text`},
		{"note", `'${{ host.labels }} x'`, `t.yaml:11:18: step "s": with.note: ${{ host.labels }} is a map; it cannot be pasted into text`},
		{"note", `'x ${{ groups.g }}'`, `t.yaml:11:20: step "s": with.note: ${{ groups.g }} is a list; it cannot be pasted into text`},
		{"note", `'x ${{ toJSON(host.labels) }} ${{ join(host.groups, ",") }}'`, ``},
	}
	for _, tt := range tests {
		_, err := Load("t.yaml", planWith(tt.param, tt.value), LoadOptions{Kinds: testKinds(t)})
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %s: %v, want no error at load", tt.param, tt.value, err)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: %s: error\n%v\nwant it to start with\n%s", tt.param, tt.value, err, tt.want)
		}
	}
}

func TestRenderRuntimeErrors(t *testing.T) {
	t.Parallel()
	p, err := Load("t.yaml", planWith("count", `'${{ vars.n }}x'`), LoadOptions{Kinds: testKinds(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Steps[0].Render(p.NewEnv(p.Host("h1")))
	want := `t.yaml:10:14: step "s" on host h1: with.count: want an integer, got a string that is not one`
	if err == nil || err.Error() != want {
		t.Errorf("render error %v, want %s", err, want)
	}
	// Rendering without an env does not panic.
	if _, err := p.Steps[0].Render(nil); err == nil {
		t.Error("render with a nil env: want an error")
	}
}

func TestCoerce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   any
		typ  steps.ParamType
		want any
		err  string
	}{
		{"x", steps.String, "x", ""},
		{nil, steps.String, "", ""},
		{3, steps.String, "3", ""},
		{[]any{"a"}, steps.String, nil, "want a string, got list"},
		{" 42 ", steps.Int, 42, ""},
		{4.0, steps.Int, 4, ""},
		{4.5, steps.Int, nil, "want an integer, got a number with a fraction"},
		{true, steps.Int, nil, "want an integer, got boolean"},
		{"false", steps.Bool, false, ""},
		{1, steps.Bool, nil, "want true or false, got integer"},
		{[]any{"a", 1, true, nil}, steps.StringList, []string{"a", "1", "true", ""}, ""},
		{[]any{map[string]any{}}, steps.StringList, nil, "item 0: want a string, got map"},
		{"a", steps.StringList, nil, "want a list of strings, got string"},
		{map[string]any{"a": 1}, steps.StringMap, map[string]string{"a": "1"}, ""},
		{map[string]any{"a": []any{}}, steps.StringMap, nil, `key "a": want a string, got list`},
		{"1m30s", steps.Duration, 90 * 1e9, ""},
		{90, steps.Duration, nil, "want a duration such as 30s or 5m, got integer"},
	}
	for _, tt := range tests {
		got, err := coerce(tt.in, tt.typ)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("coerce(%#v, %s) error %v, want %q", tt.in, tt.typ, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("coerce(%#v, %s): %v", tt.in, tt.typ, err)
			continue
		}
		if tt.typ == steps.Duration {
			got = fmt.Sprint(int64(got.(interface{ Nanoseconds() int64 }).Nanoseconds()))
			tt.want = fmt.Sprint(int64(tt.want.(float64)))
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("coerce(%#v, %s) (-want +got):\n%s", tt.in, tt.typ, diff)
		}
	}
}

func TestWhenForms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		when string
		want bool
		err  string
	}{
		{`'${{ vars.n == 3 }}'`, true, ""},
		{`true`, true, ""},
		{`false`, false, ""},
		{`'host.labels.role == "web" && vars.v == "1.29"'`, true, ""},
		{`'vars.missing?.deeper == nil'`, true, ""},
		{`'vars.list[5] == "x"'`, false, `t.yaml:9:12: step "s" on host h1: when: index out of range: 5 (array length is 2)`},
		{`'${{ vars.n == }}'`, false, `t.yaml:9:24: step "s": when: bad expression "vars.n ==": unexpected token EOF`},
		{`''`, false, `t.yaml:9:11: step "s": when is empty`},
		{`[a]`, false, `t.yaml:9:11: step "s": when: want an expression, got list`},
	}
	for _, tt := range tests {
		src := fmt.Sprintf(strings.Replace(templatePlan, "    with:", "    when: %s\n    with:", 1), tt.when, "count: 1")
		p, err := Load("t.yaml", []byte(src), LoadOptions{Kinds: testKinds(t)})
		if err != nil {
			if tt.err == "" || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("when: %s: load error\n%v\nwant %q", tt.when, err, tt.err)
			}
			continue
		}
		got, err := p.Steps[0].EvalWhen(p.NewEnv(p.Host("h1")))
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("when: %s: error %v, want %q", tt.when, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("when: %s = %v, %v; want %v", tt.when, got, err, tt.want)
		}
	}
}

const outputsPlan = `name: outs
hosts: {groups: {g: [{name: h1, address: 127.0.0.1}, {name: h2, address: 127.0.0.2}]}}
steps:
  - {id: a, kind: shell, on: "g[0]", with: {run: echo}}
  - id: b
    kind: shell
    on: g[0]
    needs: [a]
    with:
      run: %s
`

func TestMissingOutputFailsRender(t *testing.T) {
	t.Parallel()
	tests := []struct{ run, want string }{
		{`'echo ${{ steps.a.outputs.nope }}'`, `t.yaml:10:12: step "b" on host h1: with.run: step a has no output "nope" (it has: tok, x)`},
		{`'echo ${{ steps.a.outputs["nope"] }}'`, `step a has no output "nope" (it has: tok, x)`},
		{`'echo ${{ steps.a.hosts["h1"].outputs.nope }}'`, `step a on host h1 has no output "nope" (it has: tok, x)`},
		{`'echo ${{ steps.a.hosts["h2"].outputs.tok }}'`, `step a on host h2 has no output "tok" (it has none)`},
		{`'echo ${{ steps.a.outputs.tok }}'`, ``},
		{`'echo ${{ steps.a.outputs.nope ?? "dflt" }}'`, ``},
		{`'echo ${{ steps.a.outputs?.nope }}'`, ``},
		{`'echo ${{ "nope" in steps.a.outputs }}'`, ``},
	}
	want := map[string]string{
		`'echo ${{ steps.a.outputs.tok }}'`:            "echo T",
		`'echo ${{ steps.a.outputs.nope ?? "dflt" }}'`: "echo dflt",
		`'echo ${{ steps.a.outputs?.nope }}'`:          "echo ",
		`'echo ${{ "nope" in steps.a.outputs }}'`:      "echo false",
	}
	for _, tt := range tests {
		p, err := Load("t.yaml", []byte(fmt.Sprintf(outputsPlan, tt.run)), LoadOptions{Kinds: steps.Builtin()})
		if err != nil {
			t.Fatalf("%s: %v", tt.run, err)
		}
		env := p.NewEnv(p.Host("h1"))
		outs := map[string]string{"tok": "T", "x": "1"}
		env.Steps["a"] = StepView{Outputs: outs, Hosts: map[string]HostOutputs{"h1": {Outputs: outs}}}
		params, err := p.Step("b").Render(env)
		if tt.want == "" {
			if err != nil || params["run"] != want[tt.run] {
				t.Errorf("%s: %q, %v; want %q", tt.run, params["run"], err, want[tt.run])
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.run, err, tt.want)
		}
	}
}
