package plans

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/steps"
)

func TestSecretVars(t *testing.T) {
	env := map[string]string{"FROM_ENV": "env-value"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	load := func(vars string, set map[string]string) (*Plan, error) {
		text := "name: p\nvars:\n" + vars + "hosts: {groups: {g: [{name: h, address: local}]}}\nsteps:\n  - {id: a, kind: shell, with: {run: 'true'}}\n"
		return Load("p.yaml", []byte(text), LoadOptions{Kinds: steps.Builtin(), Set: set, LookupEnv: lookup})
	}
	p, err := load("  a: {secret: true}\n  b: {secret: true, env: FROM_ENV}\n  c: {secret: true, env: UNSET}\n  m: {secret: true, other: 1}\n",
		map[string]string{"a": "set-value"})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"a": "", "b": "FROM_ENV", "c": "UNSET"}, p.SecretVars); d != "" {
		t.Errorf("SecretVars (-want +got):\n%s", d)
	}
	if p.Vars["a"] != "set-value" || p.Vars["b"] != "env-value" || p.Vars["c"] != "" {
		t.Errorf("values a=%v b=%v c=%v", p.Vars["a"], p.Vars["b"], p.Vars["c"])
	}
	if _, isMap := p.Vars["m"].(map[string]any); !isMap {
		t.Errorf("a map var with other keys is a plain map, got %#v", p.Vars["m"])
	}
	if got := p.MissingSecrets(); len(got) != 1 || !strings.Contains(got[0], "var c is secret and has no value: give it with $UNSET or --set c=VALUE") {
		t.Errorf("MissingSecrets: %q", got)
	}
	// --set wins over the environment.
	if p, err := load("  b: {secret: true, env: FROM_ENV}\n", map[string]string{"b": "given"}); err != nil || p.Vars["b"] != "given" {
		t.Errorf("--set over env: %v, %v", err, p)
	}
	for _, tc := range []struct{ vars, want string }{
		{"  a: {secret: false}\n", "p.yaml:3:6: vars.a: secret: want true"},
		{"  a: {secret: true, env: 'no-dash'}\n", "vars.a: env: want the name of an environment variable"},
	} {
		if _, err := load(tc.vars, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.vars, err, tc.want)
		}
	}
}
