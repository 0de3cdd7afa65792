// Package transport is what a step may do to a host: run a command and
// upload a file. Implementations: local (the control machine) and ssh.
package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// Command is one thing to run on a host.
//
// Script is run by a POSIX shell with errexit (`sh -e`). A script whose
// text names $SEALFLOW_TMP finds there a private directory (0700) that is
// removed when it ends (the ssh transport makes it only then; the local
// one always).
// Env is set in the script's environment; implementations must never put Env values or Script
// on a process command line visible to other users of the host (they may
// hold secrets): pass them through stdin or a private file instead.
type Command struct {
	Script string
	Env    map[string]string
	// Stdin feeds the script's standard input; nil means empty input.
	Stdin io.Reader
	// Stdout and Stderr receive the script's output; nil discards it.
	Stdout io.Writer
	Stderr io.Writer
	// Become runs the script as root through sudo (a no-op when the
	// connection's user already is root).
	Become bool
}

// Result is how a command ended. A non-zero exit is not an error of Exec:
// callers decide (see ExitError).
type Result struct {
	ExitCode int
}

// Conn is a connection to one host. It is safe for concurrent use: many
// tasks of one host share it.
type Conn interface {
	// Exec runs cmd and waits for it. Cancelling ctx kills the command.
	Exec(ctx context.Context, cmd Command) (Result, error)
	// Upload writes src to dst with mode, atomically (temp file next to
	// dst, then rename). sum is the hex sha256 of src; when dst already has
	// it nothing is sent. sum may be empty when unknown.
	Upload(ctx context.Context, src io.Reader, dst string, mode fs.FileMode, sum string) error
	// Close releases the connection.
	Close() error
}

// ErrOutcomeUnknown is wrapped by the error of a command that had started
// when the connection was lost (or that ended without an exit status):
// it may have done all, part or none of its work. A caller must not take
// such an error for a failure that is safe to run again.
var ErrOutcomeUnknown = errors.New("the command's outcome is unknown")

// ExitError is returned by Run when a command exits non-zero.
type ExitError struct {
	Code int
}

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Run is Exec that turns a non-zero exit into an *ExitError.
func Run(ctx context.Context, c Conn, cmd Command) error {
	res, err := c.Exec(ctx, cmd)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return &ExitError{Code: res.ExitCode}
	}
	return nil
}

// ValidEnvName reports whether k can name an environment variable a POSIX
// shell exports: letters, digits and '_', not starting with a digit.
// Every name a command's Env or a step's outputs use follows it.
func ValidEnvName(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
