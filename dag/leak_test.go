package dag

import (
	"context"
	"errors"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// TestWalkNoGoroutineLeak runs walks that succeed, fail fast with a visit
// still running, are cancelled and panic, then checks that every goroutine
// they started has ended. It does not run in parallel so that the count of
// goroutines is the walks' own.
func TestWalkNoGoroutineLeak(t *testing.T) {
	base := runtime.NumGoroutine()

	g := build([]string{"a", "b", "c", "d", "e"}, [2]string{"a", "f"})
	ok := func(context.Context, string) error { return nil }
	if r := Walk(context.Background(), g, WalkOptions[string]{Limit: 2}, ok); !r.OK() {
		t.Fatalf("plain walk not OK: %v", r.Errors)
	}

	failed := make(chan struct{})
	r := Walk(context.Background(), g, WalkOptions[string]{}, func(_ context.Context, k string) error {
		switch k {
		case "a":
			defer close(failed)
			return errors.New("boom")
		case "b":
			return await(failed, "a to fail")
		}
		return nil
	})
	if r.States["a"] != Failed {
		t.Fatalf("a is %v, want failed", r.States["a"])
	}

	ctx, cancel := context.WithCancel(context.Background())
	r = Walk(ctx, g, WalkOptions[string]{}, func(ctx context.Context, k string) error {
		if k == "c" {
			cancel()
		}
		<-ctx.Done()
		return ctx.Err()
	})
	cancel()
	if len(r.Cancelled()) == 0 {
		t.Fatalf("cancelled walk: no visit cancelled (states %v)", r.States)
	}

	Walk(context.Background(), g, WalkOptions[string]{KeepGoing: true}, func(context.Context, string) error {
		panic("visit broke")
	})

	deadline := time.Now().Add(patience)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		var b strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Fatalf("%d goroutines after the walks, %d before:\n%s", n, base, b.String())
	}
}
