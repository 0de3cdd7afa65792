package lvscare

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestImportBoundary: lvscare imports nothing of plans, steps, the dag,
// the journal or the engine (directly or not).
func TestImportBoundary(t *testing.T) {
	t.Parallel()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := exec.LookPath(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to list imports with")
		}
	}
	out, err := exec.Command(goBin, "list", "-deps", "-test=false", "github.com/sealflow/sealflow/lvscare/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	const mod = "github.com/sealflow/sealflow/"
	forbidden := []string{"plans", "steps", "dag", "internal/journal", "internal/engine", "internal/app", "cmd/"}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed only %v", deps)
	}
	for _, dep := range deps {
		rel, ok := strings.CutPrefix(dep, mod)
		if !ok {
			continue
		}
		for _, f := range forbidden {
			if rel == strings.TrimSuffix(f, "/") || strings.HasPrefix(rel, strings.TrimSuffix(f, "/")+"/") {
				t.Errorf("lvscare depends on %s", dep)
			}
		}
	}
}
