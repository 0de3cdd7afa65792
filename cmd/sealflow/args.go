package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed moves the flags of a top-level command that come after its
// arguments in front of them, so `sealflow run plan.yaml -i hosts.yaml`
// works like `sealflow run -i hosts.yaml plan.yaml` (urfave/cli/v2 stops
// at the first argument). Everything after "--" stays as it is.
func interspersed(cmds []*cli.Command, args []string) []string {
	if len(args) < 3 || args[len(args)-1] == completionFlag {
		// Completion reads the words as typed, the flag last.
		return args
	}
	var cmd *cli.Command
	for _, c := range cmds {
		if c.HasName(args[1]) {
			cmd = c
		}
	}
	if cmd == nil || cmd.SkipFlagParsing || len(cmd.Subcommands) > 0 {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var flags, positional []string
	rest := args[2:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			positional = append(positional, rest[i:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if takesValue[name] && i+1 < len(rest) {
			i++
			flags = append(flags, rest[i])
		}
	}
	out := append([]string{args[0], args[1]}, flags...)
	return append(out, positional...)
}
