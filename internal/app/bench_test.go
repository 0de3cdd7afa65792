package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealflow/sealflow/internal/engine"
	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/internal/transport"
	"github.com/sealflow/sealflow/plans"
	"github.com/sealflow/sealflow/steps"
	"github.com/sealflow/sealflow/steps/steptest"
)

// benchHostsPlan: nSteps shell steps in a chain, each on all nHosts hosts.
func benchHostsPlan(nSteps, nHosts int) string {
	var b strings.Builder
	b.WriteString("name: bench\nhosts:\n  groups:\n    all-hosts:\n")
	for i := range nHosts {
		fmt.Fprintf(&b, "      - {name: h%04d, address: 10.0.%d.%d}\n", i, i/250, i%250+1)
	}
	b.WriteString("steps:\n")
	for i := range nSteps {
		fmt.Fprintf(&b, "  - id: s%02d\n    kind: shell\n    with: {run: 'true'}\n", i)
		if i > 0 {
			fmt.Fprintf(&b, "    needs: [s%02d]\n", i-1)
		}
	}
	return b.String()
}

// runBenchState saves a plan of 10 chained shell steps on 2,000 hosts in
// a state directory as `sealflow run` does and runs it to the end with a
// connection whose commands succeed at once: 20,000 tasks journaled.
func runBenchState(b *testing.B, dir string) (planFile, stateDir string) {
	b.Helper()
	const nSteps, nHosts = 10, 2000
	src := []byte(benchHostsPlan(nSteps, nHosts))
	planFile, stateDir = filepath.Join(dir, "bench.yaml"), filepath.Join(dir, "state")
	if err := os.WriteFile(planFile, src, 0o644); err != nil {
		b.Fatal(err)
	}
	plan, err := plans.Load(planFile, src, plans.LoadOptions{Kinds: steps.Builtin()})
	if err != nil {
		b.Fatal(err)
	}
	st, err := journal.Open(stateDir, journal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	meta, _ := json.Marshal(runMeta{Name: plan.Name, PlanFile: planFile, PlanPath: planFile})
	if err := st.SaveRun(map[string][]byte{journal.PlanFile: src, journal.VarsFile: []byte("{}"),
		journal.SecretVarsFile: []byte("{}"), journal.MetaFile: meta, journal.InventoryFile: nil}); err != nil {
		b.Fatal(err)
	}
	conn := &steptest.Conn{}
	res, err := engine.Run(context.Background(), engine.Options{Plan: plan, State: st,
		Connect: func(context.Context, *plans.Host) (transport.Conn, error) { return conn, nil }})
	if err != nil {
		b.Fatal(err)
	}
	if !res.OK() || res.Count(engine.StatusDone) != nSteps*nHosts {
		b.Fatalf("ok=%v done=%d, want %d done", res.OK(), res.Count(engine.StatusDone), nSteps*nHosts)
	}
	return planFile, stateDir
}

// BenchmarkStatusPlan2kHosts times `sealflow status` and `sealflow plan`
// (the app functions the CLI calls, output to /dev/null) on a state
// directory holding a finished run of 20,000 tasks (10 steps × 2,000
// hosts).
func BenchmarkStatusPlan2kHosts(b *testing.B) {
	planFile, stateDir := runBenchState(b, b.TempDir())
	// A real file, as a terminal or a pipe is: every write is a system call.
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	out := IO{Stdin: strings.NewReader(""), Stdout: null, Stderr: io.Discard}
	b.Run("status", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := Status(StatusOptions{StateDir: stateDir}, out); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms")
	})
	b.Run("plan", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := Plan(PlanOptions{LoadOptions: LoadOptions{PlanFile: planFile}, StateDir: stateDir}, out); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms")
	})
}
