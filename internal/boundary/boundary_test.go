package boundary

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/sealflow/sealflow"

// kernelLibraries talk to the kernel (netlink, nftables, IPVS). Only the
// lvscare daemon and the lab may link them; the plan format must not.
func kernelLibraries() []string {
	return []string{
		"github.com/google/nftables",
		"github.com/mdlayher/netlink",
		"github.com/mdlayher/socket",
		"github.com/moby/ipvs",
		"github.com/vishvananda/netlink",
		"github.com/vishvananda/netns",
	}
}

// kernelSide says whether path is a kernel library (or a package of one) or
// the lvscare daemon, which links them (lvscare/podspec is pure).
func kernelSide(path string) bool {
	if path == module+"/lvscare" {
		return true
	}
	return slices.ContainsFunc(kernelLibraries(), func(k string) bool {
		return path == k || strings.HasPrefix(path, k+"/")
	})
}

// testHelpers are the packages besides _test.go files that may import
// testing: helpers that only tests import (TestShippedBinaryHasNoTesting
// keeps them out of the binary).
func testHelpers() []string {
	return []string{module + "/internal/kubelab", module + "/internal/testutil"}
}

// pkg is the part of `go list -json` the rules read.
type pkg struct {
	ImportPath string
	Name       string
	Standard   bool
	Imports    []string
	Deps       []string
}

// rule is one boundary: every package matched by from must not depend
// (directly or not, tests left out) on any package forbidden says.
type rule struct {
	name      string
	from      func(path string) bool
	forbidden func(dep pkg) bool
	// direct checks only the package's own imports, not its dependencies.
	direct bool
}

// under matches path and the packages below it (rel to the module).
func under(rels ...string) func(string) bool {
	return func(path string) bool {
		for _, rel := range rels {
			p := module + "/" + rel
			if path == p || strings.HasPrefix(path, p+"/") {
				return true
			}
		}
		return false
	}
}

func exactly(paths ...string) func(string) bool {
	return func(path string) bool { return slices.Contains(paths, path) }
}

// rules are the repository's boundaries.
func rules() []rule {
	inModule := func(path string) bool { return strings.HasPrefix(path, module+"/") }
	return []rule{
		{
			name:      "dag imports only the standard library",
			from:      under("dag"),
			forbidden: func(d pkg) bool { return !d.Standard },
		},
		{
			name:      "plans and steps import no kernel library",
			from:      under("plans", "steps"),
			forbidden: func(d pkg) bool { return kernelSide(d.ImportPath) },
		},
		{
			name: "lvscare imports nothing of plans, steps, the dag, the journal, the engine, the app or the CLI",
			from: under("lvscare"),
			forbidden: func(d pkg) bool {
				return under("plans", "steps", "dag", "internal/journal", "internal/engine", "internal/app", "cmd")(d.ImportPath)
			},
		},
		{
			name: "report imports nothing of the module but the journal",
			from: under("internal/report"),
			forbidden: func(d pkg) bool {
				return inModule(d.ImportPath) && !under("internal/journal")(d.ImportPath)
			},
		},
		{
			name:      "no package but a test helper imports testing",
			from:      func(path string) bool { return inModule(path) && !slices.Contains(testHelpers(), path) },
			forbidden: func(d pkg) bool { return d.ImportPath == "testing" },
			direct:    true,
		},
		{
			name:      "the shipped binary does not link testing",
			from:      exactly(module + "/cmd/sealflow"),
			forbidden: func(d pkg) bool { return d.ImportPath == "testing" },
		},
	}
}

// check returns one line per broken rule and dependency, and one per rule
// that matched no package (a renamed package must not pass unseen).
func check(rs []rule, pkgs []pkg) []string {
	byPath := map[string]pkg{}
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
	}
	var out []string
	for _, r := range rs {
		matched := false
		for _, p := range pkgs {
			if !r.from(p.ImportPath) {
				continue
			}
			matched = true
			deps := p.Deps
			if r.direct {
				deps = p.Imports
			}
			for _, d := range deps {
				dep, ok := byPath[d]
				if !ok {
					dep = pkg{ImportPath: d}
				}
				if r.forbidden(dep) {
					out = append(out, r.name+": "+p.ImportPath+" depends on "+d)
				}
			}
		}
		if !matched {
			out = append(out, r.name+": no package matches")
		}
	}
	return out
}

// goList lists every package of the module and what they depend on.
func goList(t *testing.T) []pkg {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := exec.LookPath(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to list imports with")
		}
	}
	cmd := exec.Command(goBin, "list", "-deps", "-json=ImportPath,Name,Standard,Imports,Deps", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 50 {
		t.Fatalf("go list listed only %d packages", len(pkgs))
	}
	return pkgs
}

func TestImportBoundaries(t *testing.T) {
	t.Parallel()
	for _, v := range check(rules(), goList(t)) {
		t.Error(v)
	}
}

// Each rule reports a package that breaks it, through the dependency
// that breaks it, and stays quiet when nothing does.
func TestRulesCatchViolations(t *testing.T) {
	t.Parallel()
	std := func(path string) pkg { return pkg{ImportPath: path, Standard: true} }
	m := func(rel string, deps ...string) pkg {
		return pkg{ImportPath: module + "/" + rel, Imports: deps, Deps: deps}
	}
	// A repository that keeps every rule.
	good := []pkg{
		std("fmt"), std("testing"), std("slices"),
		{ImportPath: "github.com/google/nftables"},
		{ImportPath: "golang.org/x/sync/errgroup"},
		m("dag", "slices"),
		m("lvscare/podspec", "fmt"),
		m("lvscare", "github.com/google/nftables", module+"/lvscare/podspec"),
		m("plans", module+"/dag", module+"/steps"),
		m("steps", module+"/lvscare/podspec"),
		m("steps/steptest", "fmt"),
		m("internal/kubelab", "testing"),
		m("internal/engine", module+"/dag", module+"/plans"),
		m("internal/journal", "fmt"),
		m("internal/report", module+"/internal/journal", "fmt"),
		m("cmd/sealflow", module+"/lvscare", module+"/internal/engine"),
	}
	if v := check(rules(), good); len(v) != 0 {
		t.Fatalf("a repository keeping every rule is reported:\n%s", strings.Join(v, "\n"))
	}
	// withDep returns good with the packages named by rel given dep.
	withDep := func(rel, dep string, transitive bool) []pkg {
		out := slices.Clone(good)
		for i, p := range out {
			if p.ImportPath == module+"/"+rel {
				p.Deps = append(slices.Clone(p.Deps), dep)
				if !transitive {
					p.Imports = append(slices.Clone(p.Imports), dep)
				}
				out[i] = p
			}
		}
		return out
	}
	for _, tt := range []struct {
		name      string
		pkgs      []pkg
		rule, dep string
	}{
		{"dag imports x/sync", withDep("dag", "golang.org/x/sync/errgroup", false), "dag imports only", "golang.org/x/sync/errgroup"},
		{"steps links lvscare", withDep("steps", module+"/lvscare", true), "plans and steps", module + "/lvscare"},
		{"plans links nftables", withDep("plans", "github.com/google/nftables", true), "plans and steps", "github.com/google/nftables"},
		{"steptest links netlink", withDep("steps/steptest", "github.com/vishvananda/netlink", false), "plans and steps", "github.com/vishvananda/netlink"},
		{"lvscare links the engine", withDep("lvscare", module+"/internal/engine", true), "lvscare imports nothing", module + "/internal/engine"},
		{"podspec imports steps", withDep("lvscare/podspec", module+"/steps", false), "lvscare imports nothing", module + "/steps"},
		{"report links the plan format", withDep("internal/report", module+"/plans", true), "report imports nothing", module + "/plans"},
		{"engine imports testing", withDep("internal/engine", "testing", false), "no package but a test helper", "testing"},
		{"the binary links testing", withDep("cmd/sealflow", "testing", true), "the shipped binary", "testing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := check(rules(), tt.pkgs)
			if len(v) != 1 || !strings.HasPrefix(v[0], tt.rule) || !strings.HasSuffix(v[0], " depends on "+tt.dep) {
				t.Errorf("reports %q, want one line of the rule %q about %s", v, tt.rule, tt.dep)
			}
		})
	}
	// A rule whose packages are gone (renamed) is reported too.
	var noDag []pkg
	for _, p := range good {
		if p.ImportPath != module+"/dag" {
			noDag = append(noDag, p)
		}
	}
	if v := check(rules(), noDag); len(v) != 1 || !strings.HasSuffix(v[0], "no package matches") {
		t.Errorf("without dag: %q, want the dag rule to say it matched nothing", v)
	}
}
