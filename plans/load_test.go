package plans

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/steps"
)

func loadFile(t *testing.T, name string, opts LoadOptions) *Plan {
	t.Helper()
	if opts.Kinds == nil {
		opts.Kinds = testKinds(t)
	}
	p, err := LoadFile("../testdata/plans/valid/"+name, opts)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return p
}

func names(hosts []*Host) []string {
	out := []string{}
	for _, h := range hosts {
		out = append(out, h.Name)
	}
	return out
}

type hostSummary struct {
	Name, Address, User string
	Port                int
	Labels              map[string]string
	Groups              []string
	Index               int
	Become              bool
	Bastion             *Bastion
	Line                int
}

func summarize(hosts []*Host) []hostSummary {
	var out []hostSummary
	for _, h := range hosts {
		out = append(out, hostSummary{h.Name, h.Address, h.User, h.Port, h.Labels, h.Groups, h.Index, h.Become, h.Bastion, h.Pos.Line})
	}
	return out
}

func TestLoadDemo(t *testing.T) {
	t.Parallel()
	p := loadFile(t, "demo.yaml", LoadOptions{Kinds: steps.Builtin()})
	if p.Name != "demo" || !strings.HasSuffix(p.File, "demo.yaml") {
		t.Errorf("name %q file %q", p.Name, p.File)
	}
	wantHosts := []hostSummary{
		{"10.0.0.2", "10.0.0.2", "ops", 2200, map[string]string{"dc": "one"}, []string{"masters"}, 0, false, nil, 11},
		{"10.0.0.3", "10.0.0.3", "ops", 2222, map[string]string{"dc": "one", "zone": "a"}, []string{"masters", "nodes"}, 1, false, nil, 11},
		{"n1", "10.0.0.5", "ops", 2200, map[string]string{"dc": "one"}, []string{"nodes"}, 0, true, nil, 13},
		{"n2", "10.0.0.6", "ops", 2200, map[string]string{"dc": "one"}, []string{"nodes"}, 2, false, &Bastion{Address: "10.0.0.1", User: "root", Port: 22}, 15},
		{"w1", "local", "ops", 2200, map[string]string{"dc": "one"}, []string{"workers"}, 0, false, nil, 16},
		{"w2", "local", "ops", 2200, map[string]string{"dc": "one"}, []string{"workers"}, 1, false, nil, 16},
	}
	if diff := cmp.Diff(wantHosts, summarize(p.Hosts)); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
	gotGroups := map[string][]string{}
	var order []string
	for _, g := range p.Groups {
		order = append(order, g.Name)
		gotGroups[g.Name] = names(g.Hosts)
	}
	wantGroups := map[string][]string{
		"masters": {"10.0.0.2", "10.0.0.3"},
		"nodes":   {"n1", "10.0.0.3", "n2"},
		"workers": {"w1", "w2"},
	}
	if diff := cmp.Diff(wantGroups, gotGroups); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"masters", "nodes", "workers"}, order); diff != "" {
		t.Errorf("group order (-want +got):\n%s", diff)
	}
	if !p.Host("w1").Local() || p.Host("n1").Local() {
		t.Errorf("Local(): w1 %v n1 %v", p.Host("w1").Local(), p.Host("n1").Local())
	}
	if p.Host("nope") != nil || p.Step("nope") != nil || p.Group("nope") != nil {
		t.Error("lookups of unknown names should return nil")
	}

	type stepSummary struct {
		ID, Kind, On string
		Needs        []string
		When         string
		Retries      int
		Timeout      time.Duration
		Serial       int
		Become       *bool
		Line         int
		Targets      []string
	}
	no := false
	var got []stepSummary
	for _, s := range p.Steps {
		got = append(got, stepSummary{s.ID, s.Kind, s.On, s.Needs, s.When, s.Retries, s.Timeout, s.Serial, s.Become, s.Pos.Line, names(s.Targets)})
	}
	want := []stepSummary{
		{ID: "fetch", Kind: "shell", On: "all", Line: 18, Targets: []string{"10.0.0.2", "10.0.0.3", "n1", "n2", "w1", "w2"}},
		{ID: "init", Kind: "shell", On: "masters[0]", Needs: []string{"fetch"}, Line: 21, Targets: []string{"10.0.0.2"}},
		{ID: "join", Kind: "shell", On: `host.labels.zone == "a" || "nodes" in host.groups`, Needs: []string{"init"},
			When: "vars.debug || host.index > 0", Retries: 2, Timeout: 5 * time.Minute, Serial: 1, Become: &no, Line: 32,
			Targets: []string{"10.0.0.3", "n1", "n2"}},
		{ID: "last", Kind: "shell", On: "nodes[-2:]", Needs: []string{"join"}, Line: 44, Targets: []string{"10.0.0.3", "n2"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"run": "echo ${{ vars.version }}", "secret_outputs": []any{"token"}}, p.Step("fetch").With); diff != "" {
		t.Errorf("fetch.With is the raw value (-want +got):\n%s", diff)
	}
	if p.Step("init").KindDef == nil || p.Step("init").KindDef.Name != "shell" {
		t.Errorf("KindDef not set")
	}

	// Rendering, per host.
	init := p.Step("init")
	env := p.NewEnv(p.Host("10.0.0.2"))
	env.Steps["fetch"] = StepView{Outputs: map[string]string{"token": "abc.def"}}
	params, err := init.Render(env)
	if err != nil {
		t.Fatal(err)
	}
	wantParams := steps.Params{
		"run": "kubeadm init --version v1.29.0 --token abc.def\n",
		"env": map[string]string{"HOST": "10.0.0.2", "REPLICAS": "3", "LITERAL": "${{ not.an.expr }}"},
	}
	if diff := cmp.Diff(wantParams, params); diff != "" {
		t.Errorf("render init (-want +got):\n%s", diff)
	}

	// when per host: debug is false, so hosts with index > 0 run.
	join := p.Step("join")
	gotWhen := map[string]bool{}
	for _, h := range join.Targets {
		ok, err := join.EvalWhen(p.NewEnv(h))
		if err != nil {
			t.Fatal(err)
		}
		gotWhen[h.Name] = ok
	}
	if diff := cmp.Diff(map[string]bool{"10.0.0.3": true, "n1": false, "n2": true}, gotWhen); diff != "" {
		t.Errorf("join when (-want +got):\n%s", diff)
	}
	if ok, err := p.Step("fetch").EvalWhen(p.NewEnv(p.Host("n1"))); !ok || err != nil {
		t.Errorf("a step without when: %v, %v; want true", ok, err)
	}

	fetch := p.Step("fetch")
	fp, err := fetch.Render(p.NewEnv(p.Host("w1")))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"token"}, fetch.Secrets(fp)); diff != "" {
		t.Errorf("secrets (-want +got):\n%s", diff)
	}
}

func TestLoadSet(t *testing.T) {
	t.Parallel()
	p := loadFile(t, "demo.yaml", LoadOptions{Set: map[string]string{"version": "v1.30.1", "replicas": "5", "debug": "true", "ratio": "2.5", "pkgs": "vim, git,"}})
	want := map[string]any{"version": "v1.30.1", "replicas": 5, "debug": true, "ratio": 2.5, "pkgs": []any{"vim", "git"}}
	if diff := cmp.Diff(want, p.Vars); diff != "" {
		t.Errorf("vars after --set (-want +got):\n%s", diff)
	}
	// debug=true makes every join target run.
	join := p.Step("join")
	for _, h := range join.Targets {
		if ok, err := join.EvalWhen(p.NewEnv(h)); !ok || err != nil {
			t.Errorf("when on %s: %v, %v; want true", h.Name, ok, err)
		}
	}
}

func TestLoadSetErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		set  map[string]string
		want string
	}{
		{map[string]string{"replicas": "three"}, ":4:3: --set replicas: var replicas is an integer in the plan"},
		{map[string]string{"debug": "maybe"}, ":5:3: --set debug: var debug is a boolean in the plan"},
		{map[string]string{"ratio": "x"}, ":6:3: --set ratio: var ratio is a number in the plan"},
		{map[string]string{"verison": "v1"}, `:2:1: --set verison: the plan has no var "verison"; declare it under vars:` + "\n\thint: did you mean version?"},
	}
	for _, tt := range tests {
		_, err := LoadFile("../testdata/plans/valid/demo.yaml", LoadOptions{Kinds: steps.Builtin(), Set: tt.set})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Set %v: error %v, want it to contain %q", tt.set, err, tt.want)
		}
	}
}

func TestLoadInventory(t *testing.T) {
	t.Parallel()
	inv := []byte(`hosts:
  defaults: {user: admin, key: /keys/id_ed25519, password_env: PW, tty: true}
  groups:
    masters:
      - {name: m1, address: 127.0.0.1, port: 2201, labels: {role: boot}}
      - {name: m2, address: 127.0.0.1, port: 2202, user: root, tty: false}
    nodes: [{name: m1, address: 127.0.0.1}, {name: n1, address: 127.0.0.3, password_file: /pw}]
`)
	p := loadFile(t, "noinventory.yaml", LoadOptions{Inventory: inv, InventoryFile: "inv.yaml"})
	if diff := cmp.Diff([]string{"m1", "m2", "n1"}, names(p.Hosts)); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
	m2, n1 := p.Host("m2"), p.Host("n1")
	if m2.User != "root" || m2.Key != "/keys/id_ed25519" || m2.PasswordEnv != "PW" || n1.PasswordFile != "/pw" || n1.User != "admin" {
		t.Errorf("defaults not applied: m2 %+v n1 %+v", m2, n1)
	}
	if !n1.TTY || m2.TTY {
		t.Errorf("tty: n1 (from the defaults) %v, want true; m2 (its own tty: false) %v, want false", n1.TTY, m2.TTY)
	}
	if diff := cmp.Diff(Position{File: "inv.yaml", Line: 5, Col: 9}, p.Host("m1").Pos); diff != "" {
		t.Errorf("host position (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"m1"}, names(p.Step("first-master").Targets)); diff != "" {
		t.Errorf("first-master targets (-want +got):\n%s", diff)
	}
	ok, err := p.Step("first-master").EvalWhen(p.NewEnv(p.Host("m1")))
	if !ok || err != nil {
		t.Errorf("when on m1: %v %v", ok, err)
	}
	params, err := p.Step("everywhere").Render(p.NewEnv(p.Host("n1")))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(steps.Params{"run": "echo v1.29.0 on n1"}, params); diff != "" {
		t.Errorf("render (-want +got):\n%s", diff)
	}

	// The inventory replaces the plan's own hosts.
	demoInv := []byte("groups:\n  masters: [{name: only, address: local}]\n  nodes: []\n  workers: []\n")
	d := loadFile(t, "demo.yaml", LoadOptions{Inventory: demoInv})
	if diff := cmp.Diff([]string{"only"}, names(d.Hosts)); diff != "" {
		t.Errorf("replaced hosts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"only"}, names(d.Step("init").Targets)); diff != "" {
		t.Errorf("init targets (-want +got):\n%s", diff)
	}
	if got := names(d.Step("last").Targets); len(got) != 0 {
		t.Errorf("last targets %v, want none (nodes is empty)", got)
	}

	// Errors in the inventory name the inventory file.
	_, err = LoadFile("../testdata/plans/valid/noinventory.yaml", LoadOptions{Kinds: testKinds(t), InventoryFile: "bad.yaml",
		Inventory: []byte("groups:\n  masters:\n    - {address: 127.0.0.1, port: 0}\n")})
	if err == nil || !strings.HasPrefix(err.Error(), "bad.yaml:3:34: group masters[0]: port: bad port 0") {
		t.Errorf("inventory error: %v", err)
	}
	// Without an inventory, masters is unknown.
	_, err = LoadFile("../testdata/plans/valid/noinventory.yaml", LoadOptions{Kinds: testKinds(t)})
	if err == nil || !strings.Contains(err.Error(), `noinventory.yaml:10:9: step "first-master": unknown group or host "masters" in on; groups: (none)`) {
		t.Errorf("no inventory: %v", err)
	}
}

func TestLoadAnchors(t *testing.T) {
	t.Parallel()
	p := loadFile(t, "anchors.yaml", LoadOptions{})
	start := p.Step("start")
	if start.Kind != "shell" || start.On != "web" || start.Retries != 1 || start.Timeout != 90*time.Second || start.Serial != 1 {
		t.Errorf("merged step: %+v", start)
	}
	if diff := cmp.Diff([]string{"a", "b"}, names(start.Targets)); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
	params, err := start.Render(p.NewEnv(p.Host("b")))
	if err != nil {
		t.Fatal(err)
	}
	want := steps.Params{"run": "start *img", "env": map[string]string{"IMAGE": "registry.local/app:1.0"}}
	if diff := cmp.Diff(want, params); diff != "" {
		t.Errorf("render (-want +got):\n%s", diff)
	}
	if p.Step("pull").Serial != 0 {
		t.Errorf("pull.Serial = %d, want 0 (no limit)", p.Step("pull").Serial)
	}
}

func TestRenderTyped(t *testing.T) {
	t.Parallel()
	p := loadFile(t, "typed.yaml", LoadOptions{})
	lit := p.Step("lit")
	params, err := lit.Render(p.NewEnv(p.Host("10.0.0.3")))
	if err != nil {
		t.Fatal(err)
	}
	want := steps.Params{
		"count":  7,
		"force":  true,
		"wait":   90 * time.Second,
		"names":  []string{"a", "1.20", "true"},
		"labels": map[string]string{"zone": "a", "rack": "12"},
		"note":   "1.20",
	}
	if diff := cmp.Diff(want, params); diff != "" {
		t.Errorf("literal params (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"password"}, lit.Secrets(params)); diff != "" {
		t.Errorf("kind secrets (-want +got):\n%s", diff)
	}

	r := p.Step("rendered")
	env := p.NewEnv(p.Host("10.0.0.4"))
	env.Steps["lit"] = StepView{Hosts: map[string]HostOutputs{"10.0.0.3": {Outputs: map[string]string{"id": "x7"}}}}
	params, err = r.Render(env)
	if err != nil {
		t.Fatal(err)
	}
	want = steps.Params{
		"count":  6,
		"force":  true,
		"wait":   2 * time.Minute,
		"names":  []string{"10.0.0.2", "10.0.0.3", "10.0.0.4"},
		"labels": map[string]string{"host": "10.0.0.4", "index": "2", "from": "x7"},
		"note":   "ratio 1.2 extra [] ${{ kept }}",
	}
	if diff := cmp.Diff(want, params); diff != "" {
		t.Errorf("rendered params (-want +got):\n%s", diff)
	}

	// A value of the wrong type at run time names the step, host, param and place.
	bad := p.NewEnv(p.Host("10.0.0.4"))
	bad.Vars = map[string]any{"n": "lots", "flag": "true", "wait": "1s", "ratio": 1.0}
	_, err = r.Render(bad)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("render error %T %v, want *Error", err, err)
	}
	if got, want := e.Error(), `typed.yaml:27:14: step "rendered" on host 10.0.0.4: with.count: `; !strings.Contains(got, want) {
		t.Errorf("render error %q, want it to contain %q", got, want)
	}
	bad.Vars = map[string]any{"n": 1, "flag": "yes", "wait": "1s", "ratio": 1.0}
	if _, err = r.Render(bad); err == nil || !strings.Contains(err.Error(), `with.force: want true or false`) {
		t.Errorf("render error %v, want with.force: want true or false", err)
	}
	bad.Vars = map[string]any{"n": 1, "flag": "true", "wait": "soon", "ratio": 1.0}
	if _, err = r.Render(bad); err == nil || !strings.Contains(err.Error(), `typed.yaml:29:13: step "rendered" on host 10.0.0.4: with.wait: want a duration`) {
		t.Errorf("render error %v, want with.wait: want a duration", err)
	}
}

func TestLoadInventoryVars(t *testing.T) {
	t.Parallel()
	// Both inventory forms; --set wins over the inventory; a var the plan
	// does not declare is left out (one inventory serves several plans).
	for _, inv := range []string{
		"groups:\n  masters: [local]\n  nodes: []\n  workers: []\nvars: {version: v1.31.0, replicas: 7, debug: true, ratio: 3, pkgs: [a], other: x}\n",
		"hosts:\n  groups:\n    masters: [local]\n    nodes: []\n    workers: []\nvars:\n  version: v1.31.0\n  replicas: 7\n  debug: true\n  ratio: 3\n  pkgs: [a]\n  other: x\n",
	} {
		p := loadFile(t, "demo.yaml", LoadOptions{Inventory: []byte(inv), InventoryFile: "inv.yaml", Set: map[string]string{"replicas": "9"}})
		want := map[string]any{"version": "v1.31.0", "replicas": 9, "debug": true, "ratio": 3.0, "pkgs": []any{"a"}}
		if diff := cmp.Diff(want, p.Vars); diff != "" {
			t.Errorf("vars with inventory %q (-want +got):\n%s", inv, diff)
		}
	}
	tests := []struct{ inv, want string }{
		{"groups:\n  masters: [local]\nvars: {replicas: many}\n", "inv.yaml:3:18: inventory var replicas: the plan's replicas is an integer; this value is a string"},
		{"groups:\n  masters: [local]\nvars: {version: [1]}\n", "inv.yaml:3:17: inventory var version: the plan's version is a string; this value is a list"},
		{"hosts:\n  groups: {masters: [local]}\nvar: {}\n", `inv.yaml:3:1: unknown key "var" in the inventory: it holds hosts: and vars:`},
	}
	for _, tt := range tests {
		_, err := Load("demo.yaml", mustRead(t, "../testdata/plans/valid/demo.yaml"), LoadOptions{Kinds: steps.Builtin(), Inventory: []byte(tt.inv), InventoryFile: "inv.yaml"})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("inventory %q: error %v, want %q", tt.inv, err, tt.want)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
