// Package app holds one function per CLI verb. It composes plans, the
// engine, the journal, transports and the ui; it knows nothing of flags.
package app

import (
	"errors"
	"fmt"
	"io"

	"github.com/sealflow/sealflow/internal/journal"
)

// DefaultStateDir is the state directory of a verb given none (the
// journal's default).
const DefaultStateDir = journal.DefaultDir

// Exit codes.
const (
	ExitOK          = 0
	ExitFailed      = 1
	ExitInvalid     = 2
	ExitInterrupted = 130
)

// ExitError carries the process exit code for an error.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Invalid marks err as bad input (exit code 2).
func Invalid(err error) error { return &ExitError{Code: ExitInvalid, Err: err} }

// Invalidf is Invalid(fmt.Errorf(...)).
func Invalidf(format string, args ...any) error {
	return Invalid(fmt.Errorf(format, args...))
}

// Code returns the exit code for err: 0 for nil, the code of an
// *ExitError, 1 otherwise.
func Code(err error) int {
	if err == nil {
		return ExitOK
	}
	var e *ExitError
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitFailed
}

// IO is where a verb writes.
type IO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// TTY says whether Stdout is a terminal.
	TTY bool
	// Size returns the terminal's columns and rows (nil: not known).
	Size func() (cols, rows int)
	// Resized receives a value when the terminal's size changed.
	Resized <-chan struct{}
	// Color allows ANSI colours on the terminal (NO_COLOR unset).
	Color bool
}
