package dag

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fuzzCase is a graph and walk options decoded from fuzz bytes:
//
//	data[0]  number of nodes (1..24)
//	data[1]  bits 0-1 Limit (0 none), 2-3 groups (0 none), 4-5 group limit
//	         (0 none), 6 keep going, 7 acyclic (edges go from lower to higher)
//	data[2]  bit 0 inject failures, bits 1-7 which nodes fail (by i % 7)
//	data[3:] edges as byte pairs
type fuzzCase struct {
	n          int
	g          *Graph[int]
	limit      int
	groups     int
	groupLimit int
	keepGoing  bool
	fails      []bool
}

func decodeFuzz(data []byte) (fuzzCase, bool) {
	if len(data) < 3 {
		return fuzzCase{}, false
	}
	c := fuzzCase{n: int(data[0]%24) + 1, g: New[int]()}
	o := data[1]
	c.limit = int(o & 3)
	c.groups = int(o >> 2 & 3)
	c.groupLimit = int(o >> 4 & 3)
	c.keepGoing = o&(1<<6) != 0
	acyclic := o&(1<<7) != 0
	c.fails = make([]bool, c.n)
	if data[2]&1 == 1 {
		for i := range c.n {
			c.fails[i] = data[2]>>1>>(i%7)&1 == 1
		}
	}
	for i := range c.n {
		c.g.Add(i)
	}
	for j := 3; j+1 < len(data); j += 2 {
		from, to := int(data[j])%c.n, int(data[j+1])%c.n
		if acyclic {
			if from == to {
				continue
			}
			from, to = min(from, to), max(from, to)
		}
		c.g.Connect(from, to)
	}
	return c, true
}

func (c fuzzCase) group(k int) string {
	if c.groups == 0 {
		return ""
	}
	return fmt.Sprint("g", k%c.groups)
}

func FuzzWalk(f *testing.F) {
	f.Add([]byte{5, 0x80, 0, 0, 1, 1, 2, 2, 3, 0, 4})
	f.Add([]byte{3, 0, 0, 0, 1, 1, 2, 2, 0})
	f.Add([]byte{4, 0, 0, 2, 2})
	f.Add([]byte{10, 0xff, 0x0b, 0, 5, 1, 5, 5, 9, 2, 3, 3, 4})
	f.Add([]byte{12, 0xb5, 0x55, 0, 1, 0, 2, 1, 3, 2, 3, 3, 4, 4, 5, 6, 7, 7, 11})
	f.Add([]byte{20, 0x9e, 0x00, 1, 19, 2, 18, 3, 17, 4, 16, 5, 15})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, ok := decodeFuzz(data)
		if !ok {
			return
		}
		if cyc := c.g.Cycle(); cyc != nil {
			checkCyclic(t, c, cyc)
			return
		}
		checkTopo(t, c)
		checkWalk(t, c)
	})
}

func hasEdge(g *Graph[int], from, to int) bool {
	return slices.Contains(g.Deps(to), from)
}

func checkCyclic(t *testing.T, c fuzzCase, cyc []int) {
	if len(cyc) < 2 || cyc[0] != cyc[len(cyc)-1] {
		t.Fatalf("Cycle() = %v: not a closed path", cyc)
	}
	inner := map[int]bool{}
	for i := 0; i+1 < len(cyc); i++ {
		if !hasEdge(c.g, cyc[i], cyc[i+1]) {
			t.Fatalf("Cycle() = %v: no edge %d -> %d", cyc, cyc[i], cyc[i+1])
		}
		if inner[cyc[i]] {
			t.Fatalf("Cycle() = %v: %d appears twice", cyc, cyc[i])
		}
		inner[cyc[i]] = true
	}
	_, err := c.g.TopoSort()
	var ce *CycleError[int]
	if !errors.As(err, &ce) {
		t.Fatalf("TopoSort on a cyclic graph: err = %v, want *CycleError", err)
	}
	if diff := cmp.Diff(cyc, ce.Path); diff != "" {
		t.Fatalf("TopoSort cycle differs from Cycle():\n%s", diff)
	}
	var visits atomic.Int64
	r := Walk(context.Background(), c.g, WalkOptions[int]{}, func(context.Context, int) error {
		visits.Add(1)
		return nil
	})
	if visits.Load() != 0 || len(r.NotRun()) != c.n || len(r.Errors) != 1 {
		t.Fatalf("Walk on a cyclic graph: %d visits, not run %v, errors %v", visits.Load(), r.NotRun(), r.Errors)
	}
	for _, err := range r.Errors {
		if !errors.As(err, &ce) {
			t.Fatalf("Walk on a cyclic graph: error %v is no *CycleError", err)
		}
	}
}

func checkTopo(t *testing.T, c fuzzCase) {
	order, err := c.g.TopoSort()
	if err != nil {
		t.Fatalf("TopoSort on an acyclic graph: %v", err)
	}
	pos := make([]int, c.n)
	for i := range pos {
		pos[i] = -1
	}
	for p, k := range order {
		if pos[k] >= 0 {
			t.Fatalf("TopoSort = %v: %d twice", order, k)
		}
		pos[k] = p
	}
	if len(order) != c.n {
		t.Fatalf("TopoSort = %v: %d nodes, want %d", order, len(order), c.n)
	}
	for k := range c.n {
		for _, d := range c.g.Deps(k) {
			if pos[d] > pos[k] {
				t.Fatalf("TopoSort = %v: %d before its dependency %d", order, k, d)
			}
		}
	}
}

func checkWalk(t *testing.T, c fuzzCase) {
	calls := make([]atomic.Int64, c.n)
	finished := make([]atomic.Bool, c.n)
	var violations atomic.Int64
	var total gauge
	gauges := map[string]*gauge{}
	for k := range c.n {
		gauges[c.group(k)] = &gauge{}
	}
	// Start and recorded run in the walker goroutine only.
	var failedSeen, startedAfterFailure bool
	opts := WalkOptions[int]{
		Limit:      c.limit,
		KeepGoing:  c.keepGoing,
		Group:      c.group,
		GroupLimit: func(string) int { return c.groupLimit },
		Start: func(int) {
			if failedSeen && !c.keepGoing {
				startedAfterFailure = true
			}
		},
		recorded: func(_ int, s State) {
			if s == Failed {
				failedSeen = true
			}
		},
	}
	r := Walk(context.Background(), c.g, opts, func(_ context.Context, k int) error {
		calls[k].Add(1)
		total.enter()
		defer total.leave()
		gg := gauges[c.group(k)]
		gg.enter()
		defer gg.leave()
		for _, d := range c.g.Deps(k) {
			if !finished[d].Load() {
				violations.Add(1)
			}
		}
		defer finished[k].Store(true)
		if c.fails[k] {
			return fmt.Errorf("node %d fails", k)
		}
		return nil
	})
	if v := violations.Load(); v > 0 {
		t.Fatalf("%d visits started before a dependency finished", v)
	}
	if startedAfterFailure {
		t.Fatal("a visit started after a failure without KeepGoing")
	}
	if c.limit > 0 && total.max.Load() > int64(c.limit) {
		t.Fatalf("%d visits at once, limit %d", total.max.Load(), c.limit)
	}
	for name, gg := range gauges {
		if name != "" && c.groupLimit > 0 && gg.max.Load() > int64(c.groupLimit) {
			t.Fatalf("group %s ran %d at once, limit %d", name, gg.max.Load(), c.groupLimit)
		}
	}
	if len(r.States) != c.n {
		t.Fatalf("States has %d nodes, want %d", len(r.States), c.n)
	}
	for k := range c.n {
		want := int64(1)
		if r.States[k] == NotRun {
			want = 0
		}
		if got := calls[k].Load(); got != want {
			t.Fatalf("node %d (%v) visited %d times, want %d", k, r.States[k], got, want)
		}
		_, hasErr := r.Errors[k]
		if hasErr != (r.States[k] == Failed) {
			t.Fatalf("node %d is %v, error recorded: %v", k, r.States[k], hasErr)
		}
		switch r.States[k] {
		case Done, Failed:
			if c.fails[k] != (r.States[k] == Failed) {
				t.Fatalf("node %d fails=%v but is %v", k, c.fails[k], r.States[k])
			}
			for _, d := range c.g.Deps(k) {
				if r.States[d] != Done {
					t.Fatalf("node %d ran though dependency %d is %v", k, d, r.States[d])
				}
			}
		case NotRun:
		default:
			t.Fatalf("node %d is %v", k, r.States[k])
		}
	}
	if c.keepGoing || !slices.Contains(c.fails, true) {
		// Everything that could run did: a node is NotRun exactly when a
		// dependency is not Done.
		order, _ := c.g.TopoSort()
		for _, k := range order {
			ready := true
			for _, d := range c.g.Deps(k) {
				ready = ready && r.States[d] == Done
			}
			if ready == (r.States[k] == NotRun) {
				t.Fatalf("node %d is %v with its dependencies all done: %v", k, r.States[k], ready)
			}
		}
	} else if len(r.Failed()) == 0 {
		t.Fatal("failures injected, fail fast, but no node failed")
	}
	if len(r.Order) != c.n-len(r.NotRun()) {
		t.Fatalf("Order has %d nodes, want %d", len(r.Order), c.n-len(r.NotRun()))
	}
}
