package main

import (
	"github.com/urfave/cli/v2"

	"github.com/sealflow/sealflow/internal/app"
)

func reportCommand(streams app.IO) *cli.Command {
	return &cli.Command{
		Name:  "report",
		Usage: "write an HTML page of the run in the state directory (timeline, critical path, failures); works during a run",
		Flags: []cli.Flag{
			stateFlag(),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: app.DefaultReportFile, Usage: "HTML `FILE` to write (- for standard output)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return app.Invalidf("report takes no arguments: it reads the run in --state (got %q)", c.Args().First())
			}
			return app.Report(app.ReportOptions{StateDir: c.String("state"), Output: c.String("output")}, streams)
		},
	}
}
