package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/sealflow/sealflow/internal/redact"
)

// Hint is the one line a summary adds under an error of err's kind (which
// key was tried, which known_hosts line to remove, which setting raises a
// limit), or "": the first error in err's chain with a Hint method gives it.
func Hint(err error) string {
	var h interface{ Hint() string }
	if errors.As(err, &h) {
		return h.Hint()
	}
	return ""
}

// TimeoutError is a task attempt cut off by its step's timeout.
type TimeoutError struct {
	Limit time.Duration
	Err   error
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("timed out after %s (step timeout; raise it with `timeout:`): %v", e.Limit, e.Err)
}

func (e *TimeoutError) Unwrap() error { return e.Err }

func (e *TimeoutError) Hint() string {
	return fmt.Sprintf("the step's `timeout:` is %s (default 1h): raise it in the plan if the work needs longer", e.Limit)
}

// redactedError is a task's error as the summary shows it: the message and
// hint with the run's secrets hidden, the chain kept for errors.As.
type redactedError struct {
	msg, hint string
	err       error
}

func redacted(s *redact.Set, err error) error {
	return &redactedError{msg: s.Redact(err.Error()), hint: s.Redact(Hint(err)), err: err}
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
func (e *redactedError) Hint() string  { return e.hint }
