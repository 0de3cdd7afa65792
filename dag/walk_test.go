package dag

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// patience bounds every wait in these tests; it is never reached unless the
// walker is wrong.
const patience = 30 * time.Second

// gauge tracks how many visits run at once and the most seen.
type gauge struct{ cur, max atomic.Int64 }

func (g *gauge) enter() {
	c := g.cur.Add(1)
	for {
		m := g.max.Load()
		if c <= m || g.max.CompareAndSwap(m, c) {
			return
		}
	}
}

func (g *gauge) leave() { g.cur.Add(-1) }

// await blocks until ch is closed or patience runs out.
func await(ch <-chan struct{}, what string) error {
	select {
	case <-ch:
		return nil
	case <-time.After(patience):
		return fmt.Errorf("gave up waiting for %s", what)
	}
}

// receive takes one value from ch in the test goroutine.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(patience):
		t.Fatalf("gave up waiting for %s", what)
	}
	var zero T
	return zero
}

func states(pairs ...any) map[string]State {
	m := make(map[string]State)
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i].(string)] = pairs[i+1].(State)
	}
	return m
}

func TestWalkEmpty(t *testing.T) {
	t.Parallel()
	r := Walk(context.Background(), New[string](), WalkOptions[string]{}, func(context.Context, string) error {
		t.Error("visit called on an empty graph")
		return nil
	})
	if !r.OK() || len(r.States) != 0 || len(r.Order) != 0 || len(r.Errors) != 0 {
		t.Errorf("empty walk report = %+v, want OK and empty", r)
	}
	r = Walk(context.Background(), nil, WalkOptions[string]{}, func(context.Context, string) error { return nil })
	if !r.OK() || len(r.States) != 0 {
		t.Errorf("nil graph walk report = %+v, want OK and empty", r)
	}
}

// TestWalkOrder walks a random DAG with limits and checks every visit
// started after all its dependencies finished.
func TestWalkOrder(t *testing.T) {
	t.Parallel()
	const n = 300
	rng := rand.New(rand.NewPCG(1, 2))
	g := New[int]()
	for i := range n {
		g.Add(i)
		for range rng.IntN(4) {
			if i > 0 {
				g.Connect(rng.IntN(i), i)
			}
		}
	}
	nodesBefore := g.Nodes()
	depsBefore := make([][]int, n)
	for i := range n {
		depsBefore[i] = g.Deps(i)
	}

	var seq atomic.Int64
	start := make([]atomic.Int64, n)
	finish := make([]atomic.Int64, n)
	calls := make([]atomic.Int64, n)
	opts := WalkOptions[int]{
		Limit:      5,
		Group:      func(k int) string { return fmt.Sprint("g", k%3) },
		GroupLimit: func(string) int { return 2 },
	}
	r := Walk(context.Background(), g, opts, func(_ context.Context, k int) error {
		calls[k].Add(1)
		start[k].Store(seq.Add(1))
		finish[k].Store(seq.Add(1))
		return nil
	})
	if !r.OK() {
		t.Fatalf("walk not OK: failed %v, not run %v", r.Failed(), r.NotRun())
	}
	for k := range n {
		if c := calls[k].Load(); c != 1 {
			t.Errorf("node %d visited %d times, want 1", k, c)
		}
		for _, d := range g.Deps(k) {
			if finish[d].Load() >= start[k].Load() {
				t.Errorf("node %d started (seq %d) before its dependency %d finished (seq %d)",
					k, start[k].Load(), d, finish[d].Load())
			}
		}
	}
	if len(r.Order) != n {
		t.Errorf("Order has %d nodes, want %d", len(r.Order), n)
	}
	seen := make(map[int]int)
	for pos, k := range r.Order {
		seen[k] = pos
	}
	for k := range n {
		for _, d := range g.Deps(k) {
			if seen[d] >= seen[k] {
				t.Errorf("Order has %d at %d, before its dependency %d at %d", k, seen[k], d, seen[d])
			}
		}
	}
	// Walk did not change the graph.
	if diff := cmp.Diff(nodesBefore, g.Nodes()); diff != "" {
		t.Errorf("Nodes changed by Walk:\n%s", diff)
	}
	for i := range n {
		if diff := cmp.Diff(depsBefore[i], g.Deps(i)); diff != "" {
			t.Errorf("Deps(%d) changed by Walk:\n%s", i, diff)
		}
	}
}

// TestWalkLimit keeps visits blocked and releases them one at a time: the
// walker must fill every slot and never more.
func TestWalkLimit(t *testing.T) {
	t.Parallel()
	const n, limit = 20, 3
	g := New[int]()
	release := make([]chan struct{}, n)
	for i := range n {
		g.Add(i)
		release[i] = make(chan struct{})
	}
	var running gauge
	started := make(chan int, n)
	done := make(chan Report[int], 1)
	var startOrder []int // written by Start in the walker goroutine only
	opts := WalkOptions[int]{Limit: limit, Start: func(k int) { startOrder = append(startOrder, k) }}
	go func() {
		done <- Walk(context.Background(), g, opts, func(_ context.Context, k int) error {
			running.enter()
			defer running.leave()
			started <- k
			return await(release[k], fmt.Sprint("release of ", k))
		})
	}()
	var order []int
	for range limit {
		order = append(order, receive(t, started, "a visit to start"))
	}
	for i := range n {
		close(release[order[i]])
		if len(order) < n {
			order = append(order, receive(t, started, "a visit to start"))
		}
	}
	r := receive(t, done, "Walk to return")
	if !r.OK() {
		t.Fatalf("walk not OK: %v", r.Errors)
	}
	if m := running.max.Load(); m != limit {
		t.Errorf("at most %d visits ran at once, want exactly %d", m, limit)
	}
	want := make([]int, n)
	for i := range n {
		want[i] = i
	}
	if diff := cmp.Diff(want, startOrder); diff != "" {
		t.Errorf("start order (-want +got):\n%s", diff)
	}
}

// TestWalkGroupLimitNoLimit: without a global limit, a full group holds its
// ready nodes back while other groups run all of theirs.
func TestWalkGroupLimitNoLimit(t *testing.T) {
	t.Parallel()
	names := []string{"a1", "a2", "a3", "a4", "a5", "a6", "b1", "b2", "b3", "c1"}
	g := New[string]()
	release := make(map[string]chan struct{})
	for _, k := range names {
		g.Add(k)
		release[k] = make(chan struct{})
	}
	gauges := map[string]*gauge{"a": {}, "b": {}, "c": {}}
	started := make(chan string, len(names))
	done := make(chan Report[string], 1)
	opts := WalkOptions[string]{
		Group: func(k string) string { return k[:1] },
		GroupLimit: func(group string) int {
			if group == "a" {
				return 2
			}
			return 0
		},
	}
	go func() {
		done <- Walk(context.Background(), g, opts, func(_ context.Context, k string) error {
			gg := gauges[k[:1]]
			gg.enter()
			defer gg.leave()
			started <- k
			return await(release[k], "release of "+k)
		})
	}()
	// a1 and a2 fill group a; b1..b3 and c1 run next to them.
	first := make(map[string]bool)
	for range 6 {
		first[receive(t, started, "first starts")] = true
	}
	for _, k := range []string{"a1", "a2", "b1", "b2", "b3", "c1"} {
		if !first[k] {
			t.Errorf("%s did not start among the first 6 (started %v)", k, first)
		}
	}
	for _, k := range []string{"b1", "b2", "b3", "c1", "a1", "a2"} {
		close(release[k])
	}
	for range 4 {
		k := receive(t, started, "later starts of group a")
		close(release[k])
	}
	r := receive(t, done, "Walk to return")
	if !r.OK() {
		t.Fatalf("walk not OK: %v", r.Errors)
	}
	if m := gauges["a"].max.Load(); m != 2 {
		t.Errorf("group a ran %d visits at once, want exactly its limit 2", m)
	}
	if m := gauges["b"].max.Load(); m != 3 {
		t.Errorf("group b (no limit) ran at most %d at once, want 3", m)
	}
}

// TestWalkGroupLimitFreesGlobalSlot: with Limit 2 and group a limited to 1,
// a1 runs long; a2 and a3 are ready first but must not take the other slot,
// which runs all of group b meanwhile.
func TestWalkGroupLimitFreesGlobalSlot(t *testing.T) {
	t.Parallel()
	g := build([]string{"a1", "a2", "a3", "b1", "b2", "b3", "b4", "b5"})
	var total gauge
	gauges := map[string]*gauge{"a": {}, "b": {}}
	bDone := make(chan struct{})
	var bCount atomic.Int64
	opts := WalkOptions[string]{
		Limit: 2,
		Group: func(k string) string { return k[:1] },
		GroupLimit: func(group string) int {
			return map[string]int{"a": 1, "b": 2}[group]
		},
	}
	r := Walk(context.Background(), g, opts, func(_ context.Context, k string) error {
		total.enter()
		defer total.leave()
		gg := gauges[k[:1]]
		gg.enter()
		defer gg.leave()
		switch k {
		case "a1":
			return await(bDone, "group b to finish while a1 runs")
		case "b1", "b2", "b3", "b4", "b5":
			if bCount.Add(1) == 5 {
				close(bDone)
			}
		}
		return nil
	})
	if !r.OK() {
		t.Fatalf("walk not OK: %v", r.Errors)
	}
	if m := total.max.Load(); m > 2 {
		t.Errorf("%d visits ran at once, limit 2", m)
	}
	if m := gauges["a"].max.Load(); m != 1 {
		t.Errorf("group a ran %d at once, want 1", m)
	}
	if m := gauges["b"].max.Load(); m > 1 {
		// Only one global slot is free while a1 runs.
		t.Errorf("group b ran %d at once while a1 held the other slot", m)
	}
	if diff := cmp.Diff([]string{"a2", "a3"}, r.Order[len(r.Order)-2:]); diff != "" {
		t.Errorf("a2 and a3 should run last, after a1 (order %v)", r.Order)
	}
}

// TestWalkSliding: with Limit 2 and one long visit, the other slot runs every
// short visit meanwhile (no fixed batches).
func TestWalkSliding(t *testing.T) {
	t.Parallel()
	g := build([]string{"long", "s1", "s2", "s3", "s4", "s5"})
	var running gauge
	shortsDone := make(chan struct{})
	var shorts atomic.Int64
	r := Walk(context.Background(), g, WalkOptions[string]{Limit: 2}, func(_ context.Context, k string) error {
		running.enter()
		defer running.leave()
		if k == "long" {
			return await(shortsDone, "the short visits to run beside the long one")
		}
		if shorts.Add(1) == 5 {
			close(shortsDone)
		}
		return nil
	})
	if !r.OK() {
		t.Fatalf("walk not OK: %v", r.Errors)
	}
	if diff := cmp.Diff([]string{"s1", "s2", "s3", "s4", "s5", "long"}, r.Order); diff != "" {
		t.Errorf("finish order (-want +got):\n%s", diff)
	}
	if m := running.max.Load(); m > 2 {
		t.Errorf("%d visits ran at once, limit 2", m)
	}
}

// TestWalkFailFast: after a failure nothing new starts; the running visit
// finishes with its context intact and Walk waits for it.
func TestWalkFailFast(t *testing.T) {
	t.Parallel()
	g := build([]string{"a", "b", "c", "d"}, [2]string{"b", "b2"})
	failRecorded := make(chan struct{})
	var mu sync.Mutex
	var started []string
	bCtxErr := errors.New("b did not run")
	boom := errors.New("boom")
	opts := WalkOptions[string]{
		Limit: 2,
		Start: func(k string) {
			mu.Lock()
			started = append(started, k)
			mu.Unlock()
		},
		recorded: func(k string, s State) {
			if k == "a" && s == Failed {
				close(failRecorded)
			}
		},
	}
	r := Walk(context.Background(), g, opts, func(ctx context.Context, k string) error {
		switch k {
		case "a":
			return boom
		case "b":
			if err := await(failRecorded, "the walker to record a's failure"); err != nil {
				return err
			}
			bCtxErr = ctx.Err()
			return nil
		}
		return nil
	})
	want := states("a", Failed, "b", Done, "c", NotRun, "d", NotRun, "b2", NotRun)
	if diff := cmp.Diff(want, r.States); diff != "" {
		t.Errorf("States (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a", "b"}, started); diff != "" {
		t.Errorf("started (-want +got):\n%s", diff)
	}
	if bCtxErr != nil {
		t.Errorf("running visit b saw ctx error %v after the failure, want none", bCtxErr)
	}
	if len(r.Errors) != 1 || !errors.Is(r.Errors["a"], boom) {
		t.Errorf("Errors = %v, want only a: boom", r.Errors)
	}
	if diff := cmp.Diff([]string{"a"}, r.Failed()); diff != "" {
		t.Errorf("Failed() (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"c", "d", "b2"}, r.NotRun()); diff != "" {
		t.Errorf("NotRun() (-want +got):\n%s", diff)
	}
	if r.OK() {
		t.Error("OK() = true after a failure")
	}
}

// TestWalkKeepGoing: independent branches complete, dependents of the failure
// are NotRun, and Errors holds only the root cause.
func TestWalkKeepGoing(t *testing.T) {
	t.Parallel()
	g := build([]string{"fail", "x", "y", "b", "c", "z", "w"},
		[2]string{"fail", "x"}, [2]string{"x", "y"},
		[2]string{"b", "c"},
		[2]string{"c", "z"}, [2]string{"fail", "z"},
		[2]string{"y", "w"}, [2]string{"c", "w"},
	)
	boom := errors.New("boom")
	var visited sync.Map
	r := Walk(context.Background(), g, WalkOptions[string]{KeepGoing: true, Limit: 1}, func(_ context.Context, k string) error {
		visited.Store(k, true)
		if k == "fail" {
			return boom
		}
		return nil
	})
	want := states("fail", Failed, "x", NotRun, "y", NotRun, "b", Done, "c", Done, "z", NotRun, "w", NotRun)
	if diff := cmp.Diff(want, r.States); diff != "" {
		t.Errorf("States (-want +got):\n%s", diff)
	}
	if len(r.Errors) != 1 || !errors.Is(r.Errors["fail"], boom) {
		t.Errorf("Errors = %v, want only fail: boom", r.Errors)
	}
	for _, k := range []string{"x", "y", "z", "w"} {
		if _, ok := visited.Load(k); ok {
			t.Errorf("%s was visited though it depends on a failure", k)
		}
	}
	if diff := cmp.Diff([]string{"fail", "b", "c"}, r.Order); diff != "" {
		t.Errorf("Order (-want +got):\n%s", diff)
	}
}

// TestWalkKeepGoingSeveralFailures: every failure is a root cause.
func TestWalkKeepGoingSeveralFailures(t *testing.T) {
	t.Parallel()
	g := build([]string{"f1", "f2", "ok"}, [2]string{"f1", "d1"}, [2]string{"f2", "d1"})
	r := Walk(context.Background(), g, WalkOptions[string]{KeepGoing: true}, func(_ context.Context, k string) error {
		if strings.HasPrefix(k, "f") {
			return errors.New(k + " broke")
		}
		return nil
	})
	if diff := cmp.Diff([]string{"f1", "f2"}, r.Failed()); diff != "" {
		t.Errorf("Failed() (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"d1"}, r.NotRun()); diff != "" {
		t.Errorf("NotRun() (-want +got):\n%s", diff)
	}
	got := map[string]string{}
	for k, err := range r.Errors {
		got[k] = err.Error()
	}
	if diff := cmp.Diff(map[string]string{"f1": "f1 broke", "f2": "f2 broke"}, got); diff != "" {
		t.Errorf("Errors (-want +got):\n%s", diff)
	}
}

// TestWalkCancel: cancelling starts nothing new; running visits see the
// cancellation; one returning an error is Cancelled, one returning nil Done.
func TestWalkCancel(t *testing.T) {
	t.Parallel()
	g := build([]string{"a", "b", "c", "d"}, [2]string{"a", "e"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan string, 5)
	done := make(chan Report[string], 1)
	go func() {
		done <- Walk(ctx, g, WalkOptions[string]{Limit: 2}, func(ctx context.Context, k string) error {
			started <- k
			if err := await(ctx.Done(), "cancellation"); err != nil {
				return err
			}
			if k == "a" {
				return fmt.Errorf("stopping %s: %w", k, ctx.Err())
			}
			return nil
		})
	}()
	got := map[string]bool{}
	got[receive(t, started, "first start")] = true
	got[receive(t, started, "second start")] = true
	if !got["a"] || !got["b"] {
		t.Fatalf("started %v, want a and b", got)
	}
	cancel()
	r := receive(t, done, "Walk to return after cancel")
	want := states("a", Cancelled, "b", Done, "c", NotRun, "d", NotRun, "e", NotRun)
	if diff := cmp.Diff(want, r.States); diff != "" {
		t.Errorf("States (-want +got):\n%s", diff)
	}
	if len(r.Errors) != 0 {
		t.Errorf("Errors = %v, want none (cancellation is no failure)", r.Errors)
	}
	if diff := cmp.Diff([]string{"a"}, r.Cancelled()); diff != "" {
		t.Errorf("Cancelled() (-want +got):\n%s", diff)
	}
	if len(started) != 0 {
		t.Errorf("%d visits started after cancel", len(started))
	}
}

func TestWalkCancelledBefore(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g := build([]string{"a", "b"})
	r := Walk(ctx, g, WalkOptions[string]{}, func(context.Context, string) error {
		t.Error("visit called with a cancelled context")
		return nil
	})
	if diff := cmp.Diff([]string{"a", "b"}, r.NotRun()); diff != "" {
		t.Errorf("NotRun() (-want +got):\n%s", diff)
	}
}

func TestWalkLess(t *testing.T) {
	t.Parallel()
	prio := map[string]int{"a": 9, "b": 1, "c": 2, "z": 8}
	tests := []struct {
		name  string
		nodes []string
		edges [][2]string
		less  func(a, b string) bool
		group func(string) string
		want  []string
	}{
		{
			name:  "insertion order by default",
			nodes: []string{"c", "a", "d", "b"},
			want:  []string{"c", "a", "d", "b"},
		},
		{
			name:  "reverse",
			nodes: []string{"a", "b", "c", "d"},
			less:  func(a, b string) bool { return a > b },
			want:  []string{"d", "c", "b", "a"},
		},
		{
			name:  "ties keep insertion order",
			nodes: []string{"x2", "y1", "x1", "y2"},
			less:  func(a, b string) bool { return a[:1] < b[:1] },
			want:  []string{"x2", "x1", "y1", "y2"},
		},
		{
			name:  "a node made ready overtakes lower priorities",
			nodes: []string{"a", "b", "c"},
			edges: [][2]string{{"a", "z"}},
			less:  func(a, b string) bool { return prio[a] > prio[b] },
			want:  []string{"a", "z", "c", "b"},
		},
		{
			name:  "across groups",
			nodes: []string{"p1", "q1", "p2", "q2"},
			less:  func(a, b string) bool { return a[1:] > b[1:] },
			group: func(k string) string { return k[:1] },
			want:  []string{"p2", "q2", "p1", "q1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := build(tt.nodes, tt.edges...)
			opts := WalkOptions[string]{Limit: 1, Less: tt.less, Group: tt.group}
			r := Walk(context.Background(), g, opts, func(context.Context, string) error { return nil })
			if diff := cmp.Diff(tt.want, r.Order); diff != "" {
				t.Errorf("Order (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWalkStart(t *testing.T) {
	t.Parallel()
	g := build([]string{"a", "b", "c"}, [2]string{"a", "d"}, [2]string{"b", "d"})
	var startedSet sync.Map
	var calls []string // appended without a lock: -race flags concurrent Start calls
	opts := WalkOptions[string]{Start: func(k string) {
		calls = append(calls, k)
		startedSet.Store(k, true)
	}}
	r := Walk(context.Background(), g, opts, func(_ context.Context, k string) error {
		if _, ok := startedSet.Load(k); !ok {
			return fmt.Errorf("visit of %s before Start", k)
		}
		return nil
	})
	if !r.OK() {
		t.Fatalf("walk not OK: %v", r.Errors)
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "d"}, calls); diff != "" {
		t.Errorf("Start calls (-want +got):\n%s", diff)
	}
}

func TestWalkCycle(t *testing.T) {
	t.Parallel()
	g := build([]string{"s"}, [2]string{"s", "a"}, [2]string{"a", "b"}, [2]string{"b", "a"})
	r := Walk(context.Background(), g, WalkOptions[string]{}, func(context.Context, string) error {
		t.Error("visit called on a cyclic graph")
		return nil
	})
	if diff := cmp.Diff([]string{"s", "a", "b"}, r.NotRun()); diff != "" {
		t.Errorf("NotRun() (-want +got):\n%s", diff)
	}
	if len(r.Errors) != 1 {
		t.Fatalf("Errors = %v, want one CycleError", r.Errors)
	}
	var ce *CycleError[string]
	if !errors.As(r.Errors["a"], &ce) {
		t.Fatalf("Errors[a] = %v, want a *CycleError", r.Errors["a"])
	}
	if diff := cmp.Diff([]string{"a", "b", "a"}, ce.Path); diff != "" {
		t.Errorf("cycle path (-want +got):\n%s", diff)
	}
}

func TestWalkPanic(t *testing.T) {
	t.Parallel()
	g := build([]string{"a"}, [2]string{"a", "b"})
	r := Walk(context.Background(), g, WalkOptions[string]{}, func(_ context.Context, k string) error {
		if k == "a" {
			panic("bad input")
		}
		return nil
	})
	want := states("a", Failed, "b", NotRun)
	if diff := cmp.Diff(want, r.States); diff != "" {
		t.Errorf("States (-want +got):\n%s", diff)
	}
	if err := r.Errors["a"]; err == nil || !strings.Contains(err.Error(), "visit a: panic: bad input") {
		t.Errorf("Errors[a] = %v, want the panic", err)
	}
}

// TestWalkManyAtOnce walks different graphs from many goroutines.
func TestWalkManyAtOnce(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			g := New[int]()
			for i := range 200 {
				g.Add(i)
				if i > 0 {
					g.Connect(i/2, i)
				}
			}
			var count atomic.Int64
			r := Walk(context.Background(), g, WalkOptions[int]{Limit: w%4 + 1}, func(context.Context, int) error {
				count.Add(1)
				return nil
			})
			if !r.OK() || count.Load() != 200 {
				errs <- fmt.Errorf("walker %d: OK=%v, %d visits", w, r.OK(), count.Load())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
