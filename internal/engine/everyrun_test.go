package engine

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/internal/transport"
	"github.com/sealflow/sealflow/internal/transport/local"
	"github.com/sealflow/sealflow/plans"
	"github.com/sealflow/sealflow/steps"
)

// leaseStep is a credential that expires: a file holding its value.
// Done reports it valid while the file exists; Run makes a new one.
type leaseStep struct{ file string }

func (s leaseStep) Done(ctx context.Context, t *steps.Target) (bool, steps.Outputs, error) {
	b, err := os.ReadFile(s.file)
	if err != nil {
		return false, nil, nil
	}
	return true, steps.Outputs{"v": string(b)}, nil
}

func (s leaseStep) Run(ctx context.Context, t *steps.Target) (steps.Outputs, error) {
	v := strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := os.WriteFile(s.file, []byte(v), 0o600); err != nil {
		return nil, err
	}
	return steps.Outputs{"v": v}, nil
}

// A kind that runs on every run (EveryRun) is not restored from the
// journal: an expired credential is renewed on the next run and what
// reads it runs again with the new value; a valid one is unchanged
// (checked), and so is what reads it.
func TestEveryRunKindRenewsExpiredOutputs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	lease := filepath.Join(dir, "lease")
	reg := steps.Builtin()
	reg.Register(&steps.Kind{Name: "lease", Doc: "a lease", Rerunnable: true, EveryRun: true,
		New: func(steps.Params) (steps.Step, error) { return leaseStep{file: lease}, nil }})
	text := strings.ReplaceAll(`
name: t
hosts: {groups: {g: [{name: h, address: local}]}}
steps:
  - {id: lease, kind: lease}
  - {id: use, kind: shell, needs: [lease], with: {run: 'printf "%s\n" "${{ steps.lease.outputs.v }}" >> ${DIR}/used'}}
`, "${DIR}", dir)
	p, err := plans.Load("test.yaml", []byte(text), plans.LoadOptions{Kinds: reg})
	if err != nil {
		t.Fatal(err)
	}
	run := func() map[string]Status { return runLocal(t, p, filepath.Join(dir, "state")) }
	used := func() []string {
		b, _ := os.ReadFile(filepath.Join(dir, "used"))
		return strings.Fields(string(b))
	}
	if diff := cmp.Diff(map[string]Status{"lease@h": StatusDone, "use@h": StatusDone}, run()); diff != "" {
		t.Fatalf("first run (-want +got):\n%s", diff)
	}
	first, _ := os.ReadFile(lease)
	if diff := cmp.Diff(map[string]Status{"lease@h": StatusCached, "use@h": StatusCached}, run()); diff != "" {
		t.Errorf("a run with the lease valid (-want +got):\n%s", diff)
	}
	os.Remove(lease) // it expired
	if diff := cmp.Diff(map[string]Status{"lease@h": StatusDone, "use@h": StatusDone}, run()); diff != "" {
		t.Errorf("a run after the lease expired (-want +got):\n%s", diff)
	}
	second, _ := os.ReadFile(lease)
	if u := used(); len(u) != 2 || u[0] != string(first) || u[1] != string(second) || u[0] == u[1] {
		t.Errorf("use saw %v, want the first lease %s, then the renewed %s", u, first, second)
	}
}

// runLocal runs p on this machine with its journal in state and returns
// the tasks' statuses.
func runLocal(t *testing.T, p *plans.Plan, state string) map[string]Status {
	t.Helper()
	st, err := journal.Open(state, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	conn := &local.Conn{}
	res, err := Run(context.Background(), Options{Plan: p, State: st,
		Connect: func(context.Context, *plans.Host) (transport.Conn, error) { return conn, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return statuses(res)
}
