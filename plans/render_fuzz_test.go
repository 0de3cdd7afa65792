package plans

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzRender renders a fuzzed template string against vars and the
// outputs of a needed step. Whatever the template, loading and rendering
// never panic; text without ${{ comes back as written; a map, list or
// object never appears as Go's map[...] or {...} notation; a missing
// output is an error that names it.
func FuzzRender(f *testing.F) {
	for _, seed := range []string{
		"plain",
		"v${{ vars.v }}",
		"${{ vars.m }} and ${{ vars.list }}",
		"$${{ vars.v }} ${{vars.v}}",
		"${{ steps.a.outputs.tok }}",
		"${{ steps.a.outputs.nope }}",
		"${{ steps.a.outputs.nope ?? vars.v }}",
		"${{ steps.a.hosts[\"h1\"].outputs.tok }}-${{ host.name }}",
		"${{ host }}",
		"${{ toJSON(vars.m) }}",
		"${{ ",
		"${{ }}",
		"${{ \"}}\" }}",
	} {
		f.Add(seed, "1.29")
	}
	kinds := testKinds(f)
	f.Fuzz(func(t *testing.T, tmpl, v string) {
		if !utf8.ValidString(tmpl) || !utf8.ValidString(v) {
			return // a plan is UTF-8 text
		}
		quoted, _ := json.Marshal(tmpl)
		vq, _ := json.Marshal(v)
		plan := fmt.Sprintf(`name: fz
vars: {v: %s, m: {k: x}, list: [a, b]}
hosts: {groups: {g: [{name: h1, address: 127.0.0.1}]}}
steps:
  - {id: a, kind: typed, with: {count: 1}}
  - {id: b, kind: typed, needs: [a], with: {count: 1, note: %s}}
`, vq, quoted)
		p, err := Load("fz.yaml", []byte(plan), LoadOptions{Kinds: kinds})
		if err != nil {
			return
		}
		env := p.NewEnv(p.Host("h1"))
		outs := map[string]string{"tok": "T"}
		env.Steps["a"] = StepView{Outputs: outs, Hosts: map[string]HostOutputs{"h1": {Outputs: outs}}}
		params, err := p.Step("b").Render(env)
		if err != nil {
			if strings.Contains(tmpl, "nope") || !strings.Contains(tmpl, "${{") {
				return
			}
			if strings.Contains(err.Error(), "has no output") && !strings.Contains(err.Error(), `step a`) {
				t.Fatalf("missing output error does not name the step: %v", err)
			}
			return
		}
		got, _ := params["note"].(string)
		if !strings.Contains(tmpl, "${{") && got != tmpl {
			t.Fatalf("text without ${{: rendered %q, want %q", got, tmpl)
		}
		if strings.Contains(got, "map[") && !strings.Contains(tmpl, "map[") && !strings.Contains(v, "map[") {
			t.Fatalf("rendered Go map notation: %q from %q", got, tmpl)
		}
	})
}
