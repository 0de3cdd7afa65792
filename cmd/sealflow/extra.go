package main

import (
	"github.com/urfave/cli/v2"

	"github.com/sealflow/sealflow/internal/app"
)

// extraCommands are the commands of the lab and lvscare.
func extraCommands(streams app.IO) []*cli.Command {
	return nil
}
