package main

import (
	"github.com/urfave/cli/v2"

	"github.com/sealflow/sealflow/internal/app"
)

// extraCommands are the commands beyond running plans: the seed-style
// shortcuts, offline packages, the lab of test hosts and the lvscare daemon.
func extraCommands(streams app.IO) []*cli.Command {
	return []*cli.Command{initCommand(streams), joinCommand(streams), cleanCommand(streams), packageCommand(streams), labCommand(), lvscareCommand()}
}
