package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sealflow/sealflow/internal/app"
	"github.com/sealflow/sealflow/internal/version"
)

func stateFlag() cli.Flag {
	return &cli.StringFlag{Name: "state", Value: app.DefaultStateDir, Usage: "state `DIR` of the run (journal, logs, saved plan)"}
}

func execFlags() []cli.Flag {
	return []cli.Flag{
		stateFlag(),
		&cli.IntFlag{Name: "parallel", Value: 64, Usage: "at most `N` tasks at once"},
		&cli.BoolFlag{Name: "keep-going", Usage: "after a failure, run everything that does not depend on it"},
		&cli.StringSliceFlag{Name: "limit", Usage: "run only on these hosts or groups (`HOST|GROUP,...`)"},
		&cli.StringFlag{Name: "output", Value: "auto", Usage: "progress format: auto, plain or json"},
		&cli.StringSliceFlag{Name: "rerun", Usage: "run `STEP@HOST` again (an interrupted or done task)"},
		&cli.StringSliceFlag{Name: "skip", Usage: "mark `STEP@HOST` done without running it"},
		&cli.StringFlag{Name: "known-hosts", Usage: "known_hosts `FILE` (default ~/.ssh/known_hosts)"},
		&cli.StringFlag{Name: "host-key-check", Value: "strict", Usage: "strict, accept-new or off"},
		&cli.BoolFlag{Name: "password-stdin", Usage: "read the SSH/sudo password from standard input"},
		&cli.StringFlag{Name: "passwd", Usage: "SSH password (shows in ps: prefer password_env, password_file or --password-stdin)"},
	}
}

func execOptions(c *cli.Context) (app.ExecOptions, error) {
	if c.Int("parallel") < 1 {
		return app.ExecOptions{}, app.Invalidf("--parallel must be at least 1")
	}
	switch c.String("output") {
	case "auto", "plain", "json":
	default:
		return app.ExecOptions{}, app.Invalidf("--output %q: want auto, plain or json", c.String("output"))
	}
	switch c.String("host-key-check") {
	case "strict", "accept-new", "off":
	default:
		return app.ExecOptions{}, app.Invalidf("--host-key-check %q: want strict, accept-new or off", c.String("host-key-check"))
	}
	return app.ExecOptions{
		StateDir:  c.String("state"),
		Parallel:  c.Int("parallel"),
		KeepGoing: c.Bool("keep-going"),
		Limit:     splitList(c.StringSlice("limit")),
		Output:    c.String("output"),
		Rerun:     c.StringSlice("rerun"),
		Skip:      c.StringSlice("skip"),
		Connect: app.ConnectOptions{
			KnownHosts:    c.String("known-hosts"),
			HostKeyCheck:  c.String("host-key-check"),
			PasswordStdin: c.Bool("password-stdin"),
			Password:      c.String("passwd"),
		},
	}, nil
}

func loadFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "inventory", Aliases: []string{"i"}, Usage: "inventory `FILE` replacing the plan's hosts"},
		&cli.StringSliceFlag{Name: "set", Usage: "override a plan variable (`key=value`, repeatable)"},
	}
}

func planArg(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", app.Invalidf("%s needs exactly one PLAN file (got %d arguments)", c.Command.Name, c.NArg())
	}
	return c.Args().First(), nil
}

func runCommand(streams app.IO) *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run a plan",
		ArgsUsage: "PLAN",
		Flags: append(append(loadFlags(), execFlags()...),
			&cli.BoolFlag{Name: "fresh", Usage: "discard the journal of an earlier run in the state directory"}),
		Action: func(c *cli.Context) error {
			plan, err := planArg(c)
			if err != nil {
				return err
			}
			eo, err := execOptions(c)
			if err != nil {
				return err
			}
			if eo.Connect.Password != "" {
				fmt.Fprintln(streams.Stderr, "warning: --passwd shows the password in ps; prefer password_env, password_file or --password-stdin")
			}
			return app.Run(c.Context, app.RunOptions{
				ExecOptions:   eo,
				PlanFile:      plan,
				InventoryFile: c.String("inventory"),
				Set:           c.StringSlice("set"),
				Fresh:         c.Bool("fresh"),
			}, streams)
		},
	}
}

func resumeCommand(streams app.IO) *cli.Command {
	return &cli.Command{
		Name:  "resume",
		Usage: "continue the run saved in the state directory",
		Flags: execFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return app.Invalidf("resume takes no arguments: it runs the plan saved in --state")
			}
			eo, err := execOptions(c)
			if err != nil {
				return err
			}
			return app.Resume(c.Context, app.ResumeOptions{ExecOptions: eo}, streams)
		},
	}
}

func statusCommand(streams app.IO) *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show each task of the saved run: state, attempts, duration",
		Flags: []cli.Flag{stateFlag()},
		Action: func(c *cli.Context) error {
			return app.Status(app.StatusOptions{StateDir: c.String("state")}, streams)
		},
	}
}

func loadOptions(c *cli.Context) (app.LoadOptions, error) {
	plan, err := planArg(c)
	if err != nil {
		return app.LoadOptions{}, err
	}
	return app.LoadOptions{PlanFile: plan, InventoryFile: c.String("inventory"), Set: c.StringSlice("set")}, nil
}

func validateCommand(streams app.IO) *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check a plan; contacts no host",
		ArgsUsage: "PLAN",
		Flags:     loadFlags(),
		Action: func(c *cli.Context) error {
			lo, err := loadOptions(c)
			if err != nil {
				return err
			}
			return app.Validate(lo, streams)
		},
	}
}

func planCommand(streams app.IO) *cli.Command {
	return &cli.Command{
		Name:      "plan",
		Usage:     "show what a run would do where, given the journal; runs and writes nothing",
		ArgsUsage: "PLAN",
		Flags:     append(loadFlags(), stateFlag()),
		Action: func(c *cli.Context) error {
			lo, err := loadOptions(c)
			if err != nil {
				return err
			}
			return app.Plan(app.PlanOptions{LoadOptions: lo, StateDir: c.String("state")}, streams)
		},
	}
}

func graphCommand(streams app.IO) *cli.Command {
	return &cli.Command{
		Name:      "graph",
		Usage:     "print the plan's step graph",
		ArgsUsage: "PLAN",
		Flags:     append(loadFlags(), &cli.StringFlag{Name: "format", Value: "dot", Usage: "dot or mermaid"}),
		Action: func(c *cli.Context) error {
			lo, err := loadOptions(c)
			if err != nil {
				return err
			}
			return app.Graph(app.GraphOptions{LoadOptions: lo, Format: c.String("format")}, streams)
		},
	}
}

func versionCommand(streams app.IO) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version",
		Action: func(c *cli.Context) error {
			fmt.Fprintf(streams.Stdout, "sealflow %s\n", version.Version)
			return nil
		},
	}
}

func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			if p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
