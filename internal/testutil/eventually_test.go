package testutil

import (
	"errors"
	"testing"
	"time"
)

// fakeT stops the calling function on Fatalf, as testing.T does.
type fakeT struct{ testing.TB }

func (f *fakeT) Helper()               {}
func (f *fakeT) Fatalf(string, ...any) { panic(f) }

func run(f func(t testing.TB)) (failed bool) {
	ft := &fakeT{}
	defer func() {
		if r := recover(); r != nil {
			if r != ft {
				panic(r)
			}
			failed = true
		}
	}()
	f(ft)
	return false
}

func TestEventually(t *testing.T) {
	t.Parallel()
	n := 0
	if run(func(tb testing.TB) {
		Eventually(tb, "third call", time.Minute, time.Millisecond, func() error {
			if n++; n < 3 {
				return errors.New("not yet")
			}
			return nil
		})
	}) {
		t.Errorf("failed although the condition held at the third call")
	}
	if !run(func(tb testing.TB) {
		Eventually(tb, "never", 10*time.Millisecond, time.Millisecond, True(func() bool { return false }))
	}) {
		t.Errorf("did not fail for a condition that never holds")
	}
}
