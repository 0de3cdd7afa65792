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
	"sync"
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
	// A reader that goes away (`sealflow run ... | head -1`) must not kill
	// a run half-way: with SIGPIPE caught, a write to the closed pipe fails
	// with EPIPE instead, and the streams below stop writing.
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	defer signal.Stop(pipe)
	if runsPlan(args) {
		// A terminal that hangs up does not stop a run either: it goes on to
		// its end (and journals it), writing nowhere.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	streams := app.IO{Stdin: stdin, Stdout: &quietWriter{w: stdout}, Stderr: &quietWriter{w: stderr}}
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd := int(f.Fd())
		streams.TTY = true
		streams.Size = func() (int, int) {
			w, h, err := term.GetSize(fd)
			if err != nil {
				return 0, 0
			}
			return w, h
		}
		streams.Color = os.Getenv("NO_COLOR") == ""
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer func() { signal.Stop(winch); close(winch) }()
		resized := make(chan struct{}, 1)
		go func() {
			for range winch {
				select {
				case resized <- struct{}{}:
				default:
				}
			}
		}()
		streams.Resized = resized
	}
	a := newApp(streams)
	err := a.RunContext(ctx, interspersed(a.Commands, args))
	code := app.Code(err)
	var usage usageError
	if errors.As(err, &usage) {
		code = app.ExitInvalid
	}
	if err != nil {
		fmt.Fprintf(streams.Stderr, "sealflow: %v\n", err)
	}
	return code
}

// runsPlan says whether args run a plan (run, resume and the seed-style
// init, join and clean).
func runsPlan(args []string) bool {
	if len(args) < 2 {
		return false
	}
	switch args[1] {
	case "run", "resume", "init", "join", "clean":
		return true
	}
	return false
}

// quietWriter passes writes on until one fails (a closed pipe, a hung-up
// terminal), then drops them: nobody reads any more, and the run goes on.
type quietWriter struct {
	mu     sync.Mutex
	w      io.Writer
	failed bool
}

func (q *quietWriter) Write(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.failed {
		if _, err := q.w.Write(p); err != nil {
			q.failed = true
		}
	}
	return len(p), nil
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
		// `sealflow completion bash|zsh` prints the script that asks for it.
		EnableBashCompletion: true,
		ExitErrHandler:       func(*cli.Context, error) {}, // exit codes are mapped in run
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
		completionCommand(streams),
	}
	cmds = append(cmds, extraCommands(streams)...)
	hideHelpCommands(cmds)
	return cmds
}

// hideHelpCommands leaves out the "help" subcommand urfave/cli adds to
// every command (--help is there): completion then offers only real words.
func hideHelpCommands(cmds []*cli.Command) {
	for _, c := range cmds {
		c.HideHelpCommand = true
		hideHelpCommands(c.Subcommands)
	}
}
