// Package testutil holds what tests of several packages share. Only tests
// import it (internal/boundary keeps it out of the shipped binary).
package testutil

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Eventually calls cond every `every` until it returns nil, and fails the
// test with what and cond's last error once limit has passed. limit is a
// bound generous enough for a loaded machine, not a timing assertion.
func Eventually(t testing.TB, what string, limit, every time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			if msg := err.Error(); strings.Contains(msg, "\n") {
				// A long last state goes first: a truncated test log
				// keeps its head and its tail, and the tail says what failed.
				t.Logf("%s: %s", what, msg)
				t.Fatalf("%s: not within %s (what it last saw is above)", what, limit)
			}
			t.Fatalf("%s: not within %s: %v", what, limit, err)
		}
		time.Sleep(every)
	}
}

// True turns a condition into one for Eventually.
func True(cond func() bool) func() error {
	return func() error {
		if cond() {
			return nil
		}
		return errors.New("the condition does not hold")
	}
}
