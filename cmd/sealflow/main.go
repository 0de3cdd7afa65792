// Command sealflow runs plans: YAML files of steps with dependencies and
// host selectors, executed in parallel over SSH, with a journal so that
// `sealflow resume` continues where a failed or killed run stopped.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/sealflow/sealflow/internal/app"
	"github.com/sealflow/sealflow/internal/version"
)

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run is main without the process exit, so tests can call it.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tty := false
	if f, ok := stdout.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	streams := app.IO{Stdin: stdin, Stdout: stdout, Stderr: stderr, TTY: tty}
	a := newApp(streams)
	err := a.RunContext(ctx, interspersed(a.Commands, args))
	code := app.Code(err)
	var usage usageError
	if errors.As(err, &usage) {
		code = app.ExitInvalid
	}
	if err != nil {
		fmt.Fprintf(stderr, "sealflow: %v\n", err)
	}
	return code
}

// usageError is a command-line mistake (exit code 2).
type usageError struct{ error }

func newApp(streams app.IO) *cli.App {
	return &cli.App{
		Name:            "sealflow",
		Usage:           "run plans of steps on many hosts, with resume",
		Version:         version.Version,
		Writer:          streams.Stdout,
		ErrWriter:       streams.Stderr,
		Reader:          streams.Stdin,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {}, // exit codes are mapped in run
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		Commands: commands(streams),
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(streams.Stderr, "sealflow: unknown command %q (see sealflow --help)\n", name)
		},
	}
}

func commands(streams app.IO) []*cli.Command {
	cmds := []*cli.Command{
		runCommand(streams),
		resumeCommand(streams),
		statusCommand(streams),
		validateCommand(streams),
		planCommand(streams),
		graphCommand(streams),
		reportCommand(streams),
		versionCommand(streams),
	}
	return append(cmds, extraCommands(streams)...)
}
