package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/internal/redact"
	"github.com/sealflow/sealflow/internal/transport"
	"github.com/sealflow/sealflow/internal/transport/local"
	"github.com/sealflow/sealflow/plans"
	"github.com/sealflow/sealflow/steps"
)

// fixture is a plan run against local hosts in a temp dir. The plan text
// may use ${DIR} for the test's scratch directory.
type fixture struct {
	t     *testing.T
	dir   string
	state string
	plan  string
}

func newFixture(t *testing.T, plan string) *fixture {
	t.Helper()
	dir := t.TempDir()
	return &fixture{t: t, dir: dir, state: filepath.Join(dir, "state"), plan: strings.ReplaceAll(plan, "${DIR}", dir)}
}

func (f *fixture) load() *plans.Plan {
	f.t.Helper()
	p, err := plans.Load("test.yaml", []byte(f.plan), plans.LoadOptions{Kinds: steps.Builtin()})
	if err != nil {
		f.t.Fatalf("load plan: %v", err)
	}
	return p
}

// run runs the plan once with a fresh journal handle; mod adjusts options.
func (f *fixture) run(mod func(*Options)) (*Result, error) {
	f.t.Helper()
	st, err := journal.Open(f.state, journal.Options{})
	if err != nil {
		f.t.Fatal(err)
	}
	defer st.Close()
	conn := &local.Conn{}
	opts := Options{
		Plan:      f.load(),
		State:     st,
		Connect:   func(context.Context, *plans.Host) (transport.Conn, error) { return conn, nil },
		RetryBase: time.Millisecond,
	}
	if mod != nil {
		mod(&opts)
	}
	return Run(context.Background(), opts)
}

func (f *fixture) mustRun(mod func(*Options)) *Result {
	f.t.Helper()
	res, err := f.run(mod)
	if err != nil {
		f.t.Fatalf("run: %v", err)
	}
	return res
}

func (f *fixture) read(name string) string {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.dir, name))
	if err != nil {
		f.t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

func statuses(r *Result) map[string]Status {
	m := map[string]Status{}
	for _, t := range r.Tasks {
		m[t.ID.String()] = t.Status
	}
	return m
}

const twoHosts = `
name: t
hosts:
  groups:
    web: [{name: h1, address: local}, {name: h2, address: local}]
    db: [{name: h3, address: local}]
`

// Hosts run ahead independently: b@h1 needs only a@h1, so it runs while
// a@h2 is still running. a@h2 waits for b@h1's marker, so an engine that
// made b wait for every host of a would never finish it.
func TestReadyRuleHostsRunAhead(t *testing.T) {
	t.Parallel()
	f := newFixture(t, twoHosts+`
steps:
  - id: a
    kind: shell
    on: web
    timeout: 20s
    with:
      run: |
        if [ "$SEALFLOW_HOST" = h2 ]; then
          i=0; while [ ! -e ${DIR}/b-h1 ]; do i=$((i+1)); [ $i -lt 1000 ] || exit 9; sleep 0.01; done
        fi
  - id: b
    kind: shell
    on: web
    needs: [a]
    with: {run: 'touch ${DIR}/b-$SEALFLOW_HOST'}
`)
	res := f.mustRun(nil)
	want := map[string]Status{"a@h1": StatusDone, "a@h2": StatusDone, "b@h1": StatusDone, "b@h2": StatusDone}
	if diff := cmp.Diff(want, statuses(res)); diff != "" {
		t.Fatalf("statuses (-want +got):\n%s", diff)
	}
}

// A step that does not run on a host waits for all of the needed step's
// hosts: the cross-host barrier.
func TestReadyRuleCrossHostBarrier(t *testing.T) {
	t.Parallel()
	f := newFixture(t, twoHosts+`
steps:
  - id: a
    kind: shell
    on: web
    with: {run: 'sleep 0.2; touch ${DIR}/a-$SEALFLOW_HOST'}
  - id: c
    kind: shell
    on: db
    needs: [a]
    with: {run: 'test -e ${DIR}/a-h1 && test -e ${DIR}/a-h2'}
`)
	res := f.mustRun(nil)
	if !res.OK() {
		t.Fatalf("c ran before every host of a was done: %v", statuses(res))
	}
}

func manyHosts(n int) string {
	var b strings.Builder
	b.WriteString("name: t\nhosts:\n  groups:\n    all-hosts:\n")
	for i := 1; i <= n; i++ {
		b.WriteString("      - {name: h" + strconv.Itoa(i) + ", address: local}\n")
	}
	return b.String()
}

// patience bounds each wait of the gated tests (a bound, not a timing
// assertion).
const patience = time.Minute

// gatedOverlap runs a plan of `gate` steps, whose tasks each wait to be
// released by the test, and returns the largest number of tasks that ran
// at once. The test lets want tasks start, then releases one task each
// time another has started (as dag's TestWalkLimit does): an engine that
// keeps its bound reaches exactly want, however slow the machine, and one
// that never starts a task fails instead of hanging.
func gatedOverlap(t *testing.T, plan string, want int, mod func(*Options)) int64 {
	t.Helper()
	var cur, most atomic.Int64
	started := make(chan string, 64)
	release := make(chan struct{})
	reg := steps.NewRegistry()
	reg.Register(&steps.Kind{Name: "gate", New: func(steps.Params) (steps.Step, error) {
		return gateStep(func(ctx context.Context, id string) error {
			c := cur.Add(1)
			defer cur.Add(-1)
			for m := most.Load(); c > m && !most.CompareAndSwap(m, c); m = most.Load() {
			}
			started <- id
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}), nil
	}})
	p, err := plans.Load("test.yaml", []byte(plan), plans.LoadOptions{Kinds: reg})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range p.Steps {
		n += len(s.Targets)
	}
	st, err := journal.Open(filepath.Join(t.TempDir(), "state"), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	opts := Options{
		Plan: p, State: st,
		Connect: func(context.Context, *plans.Host) (transport.Conn, error) { return noopConn{}, nil },
	}
	if mod != nil {
		mod(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	type result struct {
		res *Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := Run(ctx, opts)
		done <- result{res, err}
	}()
	receive := func(what string) {
		t.Helper()
		select {
		case <-started:
		case r := <-done:
			t.Fatalf("the run ended while waiting for %s: %v", what, r.err)
		case <-time.After(patience):
			t.Fatalf("gave up waiting for %s", what)
		}
	}
	for i := range min(want, n) {
		receive(fmt.Sprintf("task %d of the first %d to start", i+1, want))
	}
	for i := range n {
		select {
		case release <- struct{}{}:
		case <-time.After(patience):
			t.Fatalf("gave up releasing task %d", i+1)
		}
		if i+want < n {
			receive(fmt.Sprintf("task %d to start", i+want+1))
		}
	}
	r := <-done
	if r.err != nil || !r.res.OK() {
		t.Fatalf("run: %v, %v", r.err, statuses(r.res))
	}
	return most.Load()
}

// gateStep is a step whose Run is the function, given the task's id.
type gateStep func(ctx context.Context, id string) error

func (g gateStep) Run(ctx context.Context, t *steps.Target) (steps.Outputs, error) {
	return nil, g(ctx, t.Env["SEALFLOW_STEP"]+"@"+t.Host.Name)
}

func TestSerialBoundsAStep(t *testing.T) {
	t.Parallel()
	plan := manyHosts(6) + `
steps:
  - {id: s, kind: gate, serial: 2}
`
	if got := gatedOverlap(t, plan, 2, nil); got != 2 {
		t.Errorf("at most %d tasks of a serial: 2 step overlapped, want exactly 2", got)
	}
}

func TestParallelBoundsTheRun(t *testing.T) {
	t.Parallel()
	plan := manyHosts(6) + `
steps:
  - {id: s, kind: gate}
`
	if got := gatedOverlap(t, plan, 3, func(o *Options) { o.Parallel = 3 }); got != 3 {
		t.Errorf("%d tasks overlapped with --parallel 3, want exactly 3", got)
	}
}

func TestRetriesCountAttempts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, manyHosts(1)+`
steps:
  - id: flaky
    kind: shell
    retries: 3
    with:
      run: |
        echo x >> ${DIR}/count
        [ $(wc -l < ${DIR}/count) -ge 3 ]
`)
	res := f.mustRun(nil)
	if !res.OK() || res.Tasks[0].Attempts != 3 {
		t.Fatalf("status %v attempts %d, want done after 3 attempts", res.Tasks[0].Status, res.Tasks[0].Attempts)
	}
	// Out of retries: fails, and the attempt count goes on in the journal.
	g := newFixture(t, manyHosts(1)+`
steps:
  - id: bad
    kind: shell
    retries: 1
    with: {run: 'echo x >> ${DIR}/count; exit 4'}
`)
	res = g.mustRun(nil)
	if res.Tasks[0].Status != StatusFailed || res.Tasks[0].Attempts != 2 {
		t.Fatalf("status %v attempts %d, want failed after 2", res.Tasks[0].Status, res.Tasks[0].Attempts)
	}
	if !strings.Contains(res.Tasks[0].Err.Error(), "exit status 4") {
		t.Errorf("error %q does not give the exit status", res.Tasks[0].Err)
	}
	res = g.mustRun(nil)
	if res.Tasks[0].Attempts != 4 {
		t.Errorf("attempts after a second run = %d, want 4 (counts survive)", res.Tasks[0].Attempts)
	}
}

func TestTimeoutKillsTheTask(t *testing.T) {
	t.Parallel()
	f := newFixture(t, manyHosts(1)+`
steps:
  - id: slow
    kind: shell
    timeout: 300ms
    with: {run: 'sleep 60 & echo $! > ${DIR}/pid; wait'}
`)
	res := f.mustRun(nil)
	tr := res.Tasks[0]
	if tr.Status != StatusFailed || !strings.Contains(tr.Err.Error(), "timed out after 300ms") {
		t.Fatalf("status %v err %v, want a timeout failure", tr.Status, tr.Err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(f.read("pid")))
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the task's process %d survived its timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// A zombie is dead for our purpose.
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

// failPlan: gate@h2 runs until bad@h1's failure has been seen (for at most
// a minute, a bound for a loaded machine), so other@h2 becomes ready only
// after the failure.
const failPlan = `
steps:
  - id: bad
    kind: shell
    on: h1
    with: {run: 'exit 1'}
  - id: after-bad
    kind: shell
    on: h1
    needs: [bad]
    with: {run: 'true'}
  - id: other
    kind: shell
    on: h2
    needs: [gate]
    with: {run: 'touch ${DIR}/other'}
  - id: gate
    kind: shell
    on: h2
    with: {run: 'i=0; while [ ! -e ${DIR}/failed-seen ]; do i=$((i+1)); [ $i -lt 6000 ] || break; sleep 0.01; done'}
`

func TestFailFastStartsNothingNew(t *testing.T) {
	t.Parallel()
	f := newFixture(t, twoHosts+failPlan)
	res := f.mustRun(func(o *Options) {
		o.Events = func(ev Event) {
			if ev.Type == EventTaskFailed {
				os.WriteFile(filepath.Join(f.dir, "failed-seen"), nil, 0o644)
			}
		}
	})
	want := map[string]Status{"bad@h1": StatusFailed, "after-bad@h1": StatusNotRun, "gate@h2": StatusDone, "other@h2": StatusNotRun}
	if diff := cmp.Diff(want, statuses(res)); diff != "" {
		t.Fatalf("fail fast (-want +got):\n%s", diff)
	}
	if len(res.Failures()) != 1 || res.Failures()[0].ID.String() != "bad@h1" {
		t.Errorf("root causes = %v, want only bad@h1", res.Failures())
	}
}

func TestKeepGoingRunsIndependentWork(t *testing.T) {
	t.Parallel()
	f := newFixture(t, twoHosts+failPlan)
	res := f.mustRun(func(o *Options) {
		o.KeepGoing = true
		o.Events = func(ev Event) {
			if ev.Type == EventTaskFailed {
				os.WriteFile(filepath.Join(f.dir, "failed-seen"), nil, 0o644)
			}
		}
	})
	want := map[string]Status{"bad@h1": StatusFailed, "after-bad@h1": StatusNotRun, "gate@h2": StatusDone, "other@h2": StatusDone}
	if diff := cmp.Diff(want, statuses(res)); diff != "" {
		t.Fatalf("keep going (-want +got):\n%s", diff)
	}
}

func TestWhenSkipsAndDependentsRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t, twoHosts+`
vars: {only: h2}
steps:
  - id: a
    kind: shell
    on: web
    when: host.name == vars.only
    with: {run: 'touch ${DIR}/a-$SEALFLOW_HOST'}
  - id: b
    kind: shell
    on: web
    needs: [a]
    with: {run: 'true'}
`)
	res := f.mustRun(nil)
	want := map[string]Status{"a@h1": StatusSkipped, "a@h2": StatusDone, "b@h1": StatusDone, "b@h2": StatusDone}
	if diff := cmp.Diff(want, statuses(res)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "a-h1")); err == nil {
		t.Error("a skipped task ran")
	}
}

func TestOutputsAcrossStepsAndHosts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, twoHosts+`
steps:
  - id: a
    kind: shell
    on: web
    with: {run: 'echo "name=$SEALFLOW_HOST-out" >> $SEALFLOW_OUTPUT'}
  - id: init
    kind: shell
    on: db
    with: {run: 'echo "token=t0k" >> $SEALFLOW_OUTPUT'}
  - id: b
    kind: shell
    on: web
    needs: [a, init]
    with:
      run: echo "${{ steps.a.outputs.name }} ${{ steps.init.outputs.token }}" > ${DIR}/b-$SEALFLOW_HOST
  - id: c
    kind: shell
    on: db
    needs: [a]
    with:
      run: echo "${{ steps.a.hosts["h1"].outputs.name }} ${{ steps.a.hosts["h2"].outputs.name }}" > ${DIR}/c
`)
	if res := f.mustRun(nil); !res.OK() {
		t.Fatalf("run failed: %v", statuses(res))
	}
	if got := f.read("b-h1"); got != "h1-out t0k\n" {
		t.Errorf("b@h1 saw %q", got)
	}
	if got := f.read("b-h2"); got != "h2-out t0k\n" {
		t.Errorf("b@h2 saw %q", got)
	}
	if got := f.read("c"); got != "h1-out h2-out\n" {
		t.Errorf("c@h3 saw %q", got)
	}
}

func TestSecretsAreRedacted(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-Value-42"
	f := newFixture(t, twoHosts+`
steps:
  - id: mint
    kind: shell
    on: h1
    with:
      secret_outputs: [token]
      run: |
        echo "token=`+secret+`" >> $SEALFLOW_OUTPUT
        echo "minted `+secret+`"
  - id: use
    kind: shell
    on: h1
    needs: [mint]
    with:
      run: |
        echo "using ${{ steps.mint.outputs.token }}"
        printf %s "${{ steps.mint.outputs.token }}" > ${DIR}/used
        echo "fail with ${{ steps.mint.outputs.token }}" >&2
        exit 3
`)
	res := f.mustRun(nil)
	if got := f.read("used"); got != secret {
		t.Fatalf("the dependent step got %q, want the secret value", got)
	}
	var files []string
	filepath.Walk(f.state, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	for _, p := range files {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), secret) {
			t.Errorf("%s holds the secret in clear text:\n%s", p, b)
		}
	}
	log, _ := os.ReadFile(filepath.Join(f.state, "logs", "use", "h1.log"))
	if !strings.Contains(string(log), "using "+redact.Marker) {
		t.Errorf("the log does not show the redacted use:\n%s", log)
	}
	for _, tr := range res.Tasks {
		if tr.Err != nil && strings.Contains(tr.Err.Error(), secret) {
			t.Errorf("error of %s shows the secret", tr.ID)
		}
	}
	// Resume restores the secret for dependents from the encrypted journal.
	os.Remove(filepath.Join(f.dir, "used"))
	f.plan = strings.Replace(f.plan, "exit 3", "true", 1)
	res = f.mustRun(nil)
	if st := statuses(res); st["mint@h1"] != StatusCached || st["use@h1"] != StatusDone {
		t.Fatalf("second run: %v", st)
	}
	if got := f.read("used"); got != secret {
		t.Errorf("after resume the dependent got %q", got)
	}
}

// A second run skips done tasks, re-runs the failed one and what depends
// on it, and restores outputs of done tasks.
func TestRerunSkipsDoneTasks(t *testing.T) {
	t.Parallel()
	f := newFixture(t, twoHosts+`
steps:
  - id: a
    kind: shell
    on: web
    with: {run: 'echo x >> ${DIR}/a-$SEALFLOW_HOST; echo "v=$SEALFLOW_HOST" >> $SEALFLOW_OUTPUT'}
  - id: b
    kind: shell
    on: web
    needs: [a]
    with: {run: 'test -e ${DIR}/fixed-$SEALFLOW_HOST; echo "${{ steps.a.outputs.v }}" > ${DIR}/b-$SEALFLOW_HOST'}
`)
	os.WriteFile(filepath.Join(f.dir, "fixed-h1"), nil, 0o644)
	res := f.mustRun(func(o *Options) { o.KeepGoing = true })
	if st := statuses(res); st["b@h2"] != StatusFailed || st["b@h1"] != StatusDone {
		t.Fatalf("first run: %v", st)
	}
	os.WriteFile(filepath.Join(f.dir, "fixed-h2"), nil, 0o644)
	res = f.mustRun(nil)
	want := map[string]Status{"a@h1": StatusCached, "a@h2": StatusCached, "b@h1": StatusCached, "b@h2": StatusDone}
	if diff := cmp.Diff(want, statuses(res)); diff != "" {
		t.Fatalf("second run (-want +got):\n%s", diff)
	}
	if f.read("a-h1") != "x\n" || f.read("a-h2") != "x\n" {
		t.Error("a done task ran twice")
	}
	if got := f.read("b-h2"); got != "h2\n" {
		t.Errorf("b@h2 saw output %q, want the restored h2", got)
	}
	// Changing a step re-runs it and what depends on it.
	f.plan = strings.Replace(f.plan, "echo x >>", "echo y >>", 1)
	res = f.mustRun(nil)
	for _, id := range []string{"a@h1", "a@h2", "b@h1", "b@h2"} {
		if statuses(res)[id] != StatusDone {
			t.Errorf("after changing a, %s is %s, want done (re-run)", id, statuses(res)[id])
		}
	}
}

// writeInterrupted journals a task as started with no end, as a crash
// leaves it.
func (f *fixture) writeInterrupted(step, host string) {
	f.t.Helper()
	st, err := journal.Open(f.state, journal.Options{})
	if err != nil {
		f.t.Fatal(err)
	}
	defer st.Close()
	for _, r := range []journal.Record{
		{Time: time.Now(), Event: journal.RunStarted, Run: 1},
		{Time: time.Now(), Event: journal.Started, Run: 1, Step: step, Host: host, Attempt: 1},
	} {
		if err := st.Append(r); err != nil {
			f.t.Fatal(err)
		}
	}
}

func TestInterruptedTaskAsksUnlessSafe(t *testing.T) {
	t.Parallel()
	plan := manyHosts(1) + `
steps:
  - id: once
    kind: shell
    with: {run: 'echo x >> ${DIR}/once'}
  - id: safe
    kind: shell
    with: {run: 'echo x >> ${DIR}/safe', rerunnable: true}
  - id: checked
    kind: shell
    with: {run: 'touch ${DIR}/made', creates: '${DIR}/made'}
`
	for _, tc := range []struct {
		name, step string
		mod        func(*Options)
		wantErr    string
		want       Status
	}{
		{name: "unsafe asks", step: "once", wantErr: "--rerun once@h1"},
		{name: "rerun decides", step: "once", mod: func(o *Options) { o.Rerun = []TaskID{{"once", "h1"}} }, want: StatusDone},
		{name: "skip decides", step: "once", mod: func(o *Options) { o.Skip = []TaskID{{"once", "h1"}} }, want: StatusSkipped},
		{name: "rerunnable runs", step: "safe", want: StatusDone},
		{name: "checker runs", step: "checked", want: StatusDone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, plan)
			f.writeInterrupted(tc.step, "h1")
			res, err := f.run(tc.mod)
			if tc.wantErr != "" {
				var in *InputError
				if !errors.As(err, &in) || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "--skip") {
					t.Fatalf("err = %v, want an InputError naming %q and --skip", err, tc.wantErr)
				}
				if _, err := os.Stat(filepath.Join(f.dir, "safe")); err == nil {
					t.Error("tasks ran although the run stopped to ask")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := statuses(res)[tc.step+"@h1"]; got != tc.want {
				t.Errorf("%s: %s, want %s", tc.step, got, tc.want)
			}
		})
	}
}

func TestLimitNeedsDoneOutside(t *testing.T) {
	t.Parallel()
	f := newFixture(t, twoHosts+`
steps:
  - id: init
    kind: shell
    on: db
    with: {run: 'echo "k=v1" >> $SEALFLOW_OUTPUT'}
  - id: join
    kind: shell
    on: web
    needs: [init]
    with: {run: 'echo "${{ steps.init.outputs.k }}" > ${DIR}/join-$SEALFLOW_HOST'}
`)
	_, err := f.run(func(o *Options) { o.Limit = []string{"web"} })
	var in *InputError
	if !errors.As(err, &in) || !strings.Contains(err.Error(), "init@h3") {
		t.Fatalf("err = %v, want an InputError naming init@h3", err)
	}
	if res := f.mustRun(func(o *Options) { o.Limit = []string{"h3"} }); !res.OK() || len(res.Tasks) != 1 {
		t.Fatalf("limit h3: %v", statuses(res))
	}
	res := f.mustRun(func(o *Options) { o.Limit = []string{"h1"} })
	if !res.OK() || len(res.Tasks) != 1 {
		t.Fatalf("limit h1: %v", statuses(res))
	}
	if got := f.read("join-h1"); got != "v1\n" {
		t.Errorf("join saw %q, want the output of init from the journal", got)
	}
	if _, err := f.run(func(o *Options) { o.Limit = []string{"nope"} }); err == nil || !strings.Contains(err.Error(), "no such host or group") {
		t.Errorf("unknown limit: %v", err)
	}
}

// Cancelling (Ctrl-C) stops running tasks and starts nothing new; the run
// reports itself interrupted and the journal lets a resume ask about it.
func TestCancelInterrupts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, manyHosts(1)+`
steps:
  - id: long
    kind: shell
    with: {run: 'touch ${DIR}/started; sleep 60'}
  - id: next
    kind: shell
    needs: [long]
    with: {run: 'true'}
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	st, err := journal.Open(f.state, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	conn := &local.Conn{}
	res, err := Run(ctx, Options{
		Plan: f.load(), State: st,
		Connect: func(context.Context, *plans.Host) (transport.Conn, error) { return conn, nil },
		Events: func(ev Event) {
			if ev.Type == EventTaskStart {
				once.Do(func() {
					go func() {
						for {
							if _, err := os.Stat(filepath.Join(f.dir, "started")); err == nil {
								cancel()
								return
							}
							time.Sleep(10 * time.Millisecond)
						}
					}()
				})
			}
		},
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || statuses(res)["long@h1"] != StatusCancelled || statuses(res)["next@h1"] != StatusNotRun {
		t.Fatalf("interrupted=%v statuses=%v", res.Interrupted, statuses(res))
	}
	if _, err := f.run(nil); err == nil || !strings.Contains(err.Error(), "long@h1") {
		t.Errorf("resume after Ctrl-C: err = %v, want it to ask about long@h1", err)
	}
}

// An expression that indexes steps dynamically still sees every step the
// task needs.
func TestDynamicStepsRead(t *testing.T) {
	t.Parallel()
	f := newFixture(t, manyHosts(1)+`
vars: {src: b}
steps:
  - {id: a, kind: shell, with: {run: 'echo v=from-a >> $SEALFLOW_OUTPUT'}}
  - {id: b, kind: shell, needs: [a], with: {run: 'echo v=from-b >> $SEALFLOW_OUTPUT'}}
  - id: c
    kind: shell
    needs: [b]
    with: {run: 'echo "${{ steps[vars.src].outputs.v }} ${{ steps.a.outputs.v }}" > ${DIR}/c'}
`)
	if res := f.mustRun(nil); !res.OK() {
		t.Fatalf("%v", statuses(res))
	}
	if got := f.read("c"); got != "from-b from-a\n" {
		t.Errorf("c saw %q", got)
	}
}

// A task that reads steps.X.hosts waits for every host of X, even when X
// also runs on its own host.
func TestReadingHostsWaitsForAllHosts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, twoHosts+`
steps:
  - id: a
    kind: shell
    on: web
    with: {run: '[ $SEALFLOW_HOST = h1 ] || sleep 0.3; echo v=$SEALFLOW_HOST >> $SEALFLOW_OUTPUT'}
  - id: b
    kind: shell
    on: h1
    needs: [a]
    with: {run: 'echo "${{ steps.a.hosts["h2"].outputs.v }}" > ${DIR}/b'}
`)
	if res := f.mustRun(nil); !res.OK() {
		t.Fatalf("%v", statuses(res))
	}
	if got := f.read("b"); got != "h2\n" {
		t.Errorf("b@h1 read %q of a@h2: it did not wait for it", got)
	}
}

// droppingConn runs commands locally, but for the first command of each
// listed step it reports the connection lost after the command ran: the
// outcome a client sees when the link drops at the end of a command.
type droppingConn struct {
	transport.Conn
	mu    sync.Mutex
	steps map[string]bool // step → still to drop
}

func (d *droppingConn) Exec(ctx context.Context, cmd transport.Command) (transport.Result, error) {
	res, err := d.Conn.Exec(ctx, cmd)
	d.mu.Lock()
	drop := d.steps[cmd.Env["SEALFLOW_STEP"]]
	d.steps[cmd.Env["SEALFLOW_STEP"]] = false
	d.mu.Unlock()
	if drop {
		return transport.Result{}, fmt.Errorf("host h1: connection lost while the command ran: %w", transport.ErrOutcomeUnknown)
	}
	return res, err
}

// A connection lost while a command ran is an unknown outcome, not a
// failure: a task that is not safe to run twice is neither retried nor
// run again by the next run without asking; one that is safe is retried.
func TestLostConnectionIsUnknownOutcome(t *testing.T) {
	t.Parallel()
	f := newFixture(t, manyHosts(1)+`
steps:
  - id: once
    kind: shell
    retries: 2
    with: {run: 'echo x >> ${DIR}/once'}
  - id: safe
    kind: shell
    retries: 1
    with: {run: 'echo x >> ${DIR}/safe', rerunnable: true}
`)
	conn := &droppingConn{Conn: &local.Conn{}, steps: map[string]bool{"once": true, "safe": true}}
	withConn := func(o *Options) {
		o.Connect = func(context.Context, *plans.Host) (transport.Conn, error) { return conn, nil }
		o.KeepGoing = true
	}
	res := f.mustRun(withConn)
	if got := statuses(res); got["once@h1"] != StatusFailed || got["safe@h1"] != StatusDone {
		t.Errorf("statuses %v, want once failed (unknown) and safe done (retried)", got)
	}
	if got := f.read("once"); got != "x\n" {
		t.Errorf("once ran %d times in the run, want 1 (no retry of an unknown outcome)", strings.Count(got, "x"))
	}
	if got := f.read("safe"); got != "x\nx\n" {
		t.Errorf("safe ran %d times, want 2 (a safe task is retried)", strings.Count(got, "x"))
	}
	// The next run asks, saying why.
	_, err := f.run(nil)
	var in *InputError
	if !errors.As(err, &in) || !strings.Contains(err.Error(), "--rerun once@h1") || !strings.Contains(err.Error(), "connection was lost") {
		t.Fatalf("second run: %v, want an InputError asking about once@h1 because the connection was lost", err)
	}
	if got := f.read("once"); got != "x\n" {
		t.Errorf("once ran again without asking: %q", got)
	}
	// --skip (it did complete) settles it.
	res = f.mustRun(func(o *Options) { o.Skip = []TaskID{{"once", "h1"}} })
	if !res.OK() || f.read("once") != "x\n" {
		t.Errorf("with --skip: ok=%v, once file %q", res.OK(), f.read("once"))
	}
}

// An output that carries a secret output's value (passed on as is, or
// wrapped in more text) is sealed like a secret: never in the journal in
// clear, hidden in logs, and restored for dependents on the next run.
func TestDerivedOutputsStaySecret(t *testing.T) {
	t.Parallel()
	const secret = "tok-Derived-9f8e7d"
	f := newFixture(t, manyHosts(1)+`
steps:
  - id: gen
    kind: shell
    with:
      secret_outputs: [tok]
      run: echo "tok=`+secret+`" >> $SEALFLOW_OUTPUT
  - id: pass
    kind: shell
    needs: [gen]
    with:
      run: |
        echo "out=${{ steps.gen.outputs.tok }}" >> $SEALFLOW_OUTPUT
        echo "header=Authorization: Bearer ${{ steps.gen.outputs.tok }}" >> $SEALFLOW_OUTPUT
        echo "plain=nothing secret" >> $SEALFLOW_OUTPUT
  - id: again
    kind: shell
    needs: [pass]
    with:
      run: |
        echo "hop=x${{ steps.pass.outputs.header }}" >> $SEALFLOW_OUTPUT
        printf %s "${{ steps.pass.outputs.out }}" > ${DIR}/used
`)
	if res := f.mustRun(nil); !res.OK() {
		t.Fatalf("run: %v", statuses(res))
	}
	journalText, err := os.ReadFile(filepath.Join(f.state, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(journalText), secret) {
		t.Errorf("the journal holds the secret in clear:\n%s", journalText)
	}
	if !strings.Contains(string(journalText), "nothing secret") {
		t.Errorf("an output without a secret is no longer in clear:\n%s", journalText)
	}
	// The next run restores the derived output for a changed dependent.
	os.Remove(filepath.Join(f.dir, "used"))
	f.plan = strings.Replace(f.plan, "> "+f.dir+"/used", "> "+f.dir+"/used; true", 1)
	if res := f.mustRun(nil); !res.OK() || statuses(res)["pass@h1"] != StatusCached {
		t.Fatalf("second run: %v", statuses(res))
	}
	if got := f.read("used"); got != secret {
		t.Errorf("the dependent got %q after the restore, want the secret", got)
	}
}

// A task's error keeps its chain (a caller can tell a timeout from another
// failure) and its hint, with secrets hidden in both.
func TestTaskErrorsKeepTheirChainAndHint(t *testing.T) {
	t.Parallel()
	f := newFixture(t, twoHosts+`
steps:
  - id: slow
    kind: shell
    on: h1
    timeout: 200ms
    with: {run: 'sleep 10'}
`)
	res := f.mustRun(nil)
	fs := res.Failures()
	if len(fs) != 1 {
		t.Fatalf("failures %+v, want slow@h1", fs)
	}
	var te *TimeoutError
	if !errors.As(fs[0].Err, &te) || te.Limit != 200*time.Millisecond {
		t.Fatalf("the failure %v (%T) is no TimeoutError of 200ms", fs[0].Err, fs[0].Err)
	}
	if h := Hint(fs[0].Err); !strings.Contains(h, "`timeout:` is 200ms") {
		t.Errorf("hint %q, want one naming the step's timeout", h)
	}
	if !strings.Contains(fs[0].Err.Error(), "timed out after 200ms") {
		t.Errorf("error %q", fs[0].Err)
	}

	// A hint that holds a secret is redacted like the message.
	s := &redact.Set{}
	s.Add("hunter2-secret")
	err := redacted(s, hinted{"login failed for hunter2-secret"})
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(Hint(err), "hunter2") || !strings.Contains(Hint(err), redact.Marker) {
		t.Errorf("redacted error %q hint %q", err, Hint(err))
	}
	var h hinted
	if !errors.As(err, &h) {
		t.Error("the redacted error lost its chain")
	}
}

type hinted struct{ msg string }

func (h hinted) Error() string { return h.msg }
func (h hinted) Hint() string  { return "check " + h.msg }

// A step's tasks learn how many hosts the step has in this run: with
// --limit, the hosts within it. distribute in mode auto relays to three
// or more; to the one host of a limited run it pushes, and says why.
func TestStepHostsWithinLimit(t *testing.T) {
	f := newFixture(t, `
name: t
hosts:
  groups:
    all-hosts:
      - {name: h1, address: local}
      - {name: h2, address: local}
      - {name: h3, address: local}
      - {name: h4, address: local}
steps:
  - {id: put, kind: distribute, with: {src: "${DIR}/pkg", dest: "${DIR}/out.pkg"}}
`)
	if err := os.WriteFile(filepath.Join(f.dir, "pkg"), []byte("package"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Were the step to relay, the agent would go to this machine's
	// /var/lib/sealflow: the hosts refuse it (the step then pushes, and
	// says why otherwise).
	conn := noRelayAgent{&local.Conn{}}
	res := f.mustRun(func(o *Options) {
		o.Limit = []string{"h2"}
		o.Connect = func(context.Context, *plans.Host) (transport.Conn, error) { return conn, nil }
	})
	if len(res.Tasks) != 1 || res.Tasks[0].Err != nil {
		t.Fatalf("tasks: %+v", res.Tasks)
	}
	log, _ := os.ReadFile(filepath.Join(f.state, "logs", "put", "h2.log"))
	if !strings.Contains(string(log), "push, not relay: the step has 1 host(s)") {
		t.Errorf("h2's log does not say it was pushed to as the one host of the run:\n%s", log)
	}
	if got := f.read("out.pkg"); got != "package" {
		t.Errorf("out.pkg = %q", got)
	}
}

// noRelayAgent is a local host that refuses to install distribute's relay
// agent.
type noRelayAgent struct{ *local.Conn }

func (c noRelayAgent) Exec(ctx context.Context, cmd transport.Command) (transport.Result, error) {
	if _, ok := cmd.Env["SF_AGENT"]; ok {
		return transport.Result{}, errors.New("no relay agent on this machine in tests")
	}
	return c.Conn.Exec(ctx, cmd)
}
