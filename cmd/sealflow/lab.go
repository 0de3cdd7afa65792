package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/sealflow/sealflow/internal/app"
	"github.com/sealflow/sealflow/internal/lab"
)

// labCommand is `sealflow lab`: test hosts on this machine (namespaces with
// a real sshd each).
func labCommand() *cli.Command {
	return &cli.Command{
		Name:  "lab",
		Usage: "test hosts on this machine: namespaces with a real sshd each",
		Subcommands: []*cli.Command{
			labUpCommand(),
			labDownCommand(),
			labExecCommand(),
			labLsCommand(),
			labEgressCommand(),
		},
	}
}

func labUpCommand() *cli.Command {
	return &cli.Command{
		Name:  "up",
		Usage: "create and start a lab",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "lab name (a-z, 0-9, '-')", Required: true},
			&cli.IntFlag{Name: "masters", Value: 3, Usage: "hosts in group masters (m1, m2, ...)"},
			&cli.IntFlag{Name: "nodes", Value: 2, Usage: "hosts in group nodes (n1, n2, ...)"},
			&cli.StringFlag{Name: "subnet", Usage: "IPv4 network of the lab, e.g. 10.250.7.0/24 (default: a free /24 in 10.250.0.0/16)"},
			&cli.StringFlag{Name: "dir", Usage: "where the lab's files go (default /var/tmp/sealflow-lab/NAME)"},
			&cli.StringFlag{Name: "user", Usage: "also create this non-root user, with the client key and sudo by password"},
			&cli.BoolFlag{Name: "password", Usage: "enable password login (root and --user) with a generated password (in DIR/password)"},
			&cli.BoolFlag{Name: "node-stack", Usage: "give every host what containerd, runc and the kubelet need (own cgroups, real-disk /var/lib/containerd, /var/lib/kubelet, /var/log, own /dev; machine-wide sysctls read-only)"},
			&cli.BoolFlag{Name: "systemd", Usage: "run systemd as every host's PID 1 (implies --node-stack)"},
			&cli.BoolFlag{Name: "kube-node", Usage: "make every host a fresh machine for a Kubernetes node (implies --systemd; the inventory gets the vars plans/ha.yaml needs on this machine)"},
			&cli.StringFlag{Name: "rate", Usage: "shape every host's link to this tc `RATE` each way, e.g. 100mbit, 1gbit (default: unshaped)"},
			&cli.BoolFlag{Name: "control-ns", Usage: "a network namespace on the lab's network for the control machine (run there: ip netns exec NS sealflow run ...), shaped at --rate"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the inventory path"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return exitWith(2, fmt.Errorf("lab up: unexpected argument %q (flags only; see `sealflow lab up --help`)", c.Args().First()))
			}
			cfg := lab.Config{
				Name:      c.String("name"),
				Masters:   c.Int("masters"),
				Nodes:     c.Int("nodes"),
				Subnet:    c.String("subnet"),
				Dir:       c.String("dir"),
				User:      c.String("user"),
				Password:  c.Bool("password"),
				NodeStack: c.Bool("node-stack"),
				Systemd:   c.Bool("systemd"),
				KubeNode:  c.Bool("kube-node"),
				Rate:      c.String("rate"),
				ControlNS: c.Bool("control-ns"),
			}
			if !c.Bool("quiet") {
				cfg.Log = func(format string, args ...any) {
					fmt.Fprintf(c.App.ErrWriter, format+"\n", args...)
				}
			}
			l, err := lab.Up(labContext(c), cfg)
			if err != nil {
				return labError(err)
			}
			out := c.App.Writer
			if c.Bool("quiet") {
				fmt.Fprintln(out, l.Inventory)
				return nil
			}
			printLab(out, l)
			fmt.Fprintf(out, "inventory: %s\n", l.Inventory)
			if l.Password != "" {
				fmt.Fprintf(out, "password:  %s (mode 0600)\n", filepath.Join(l.Dir, "password"))
			}
			run := ""
			if l.ControlNetns != "" {
				run = "ip netns exec " + l.ControlNetns + " "
			}
			fmt.Fprintf(out, "run a plan: %ssealflow run -i %s --known-hosts %s PLAN\n", run, l.Inventory, l.KnownHosts)
			fmt.Fprintf(out, "a shell:    sealflow lab exec %s %s -- bash   (remove: sealflow lab down --name %s)\n", l.Name, l.Hosts[0].Name, l.Name)
			return nil
		},
	}
}

// labName is the lab a command names, by --name or as its one argument;
// without exactly one, usage is the error (exit 2).
func labName(c *cli.Context, usage string) (string, error) {
	name := c.String("name")
	if name == "" {
		name = c.Args().First()
	}
	if name == "" || c.NArg() > 1 || (c.String("name") != "" && c.NArg() > 0) {
		return "", exitWith(2, errors.New(usage))
	}
	return name, nil
}

func labDownCommand() *cli.Command {
	return &cli.Command{
		Name:      "down",
		Usage:     "remove a lab (hosts, namespaces, links, files); also after a crash",
		ArgsUsage: "[NAME]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "lab name"},
		},
		Action: func(c *cli.Context) error {
			name, err := labName(c, "lab down: give the lab's name: sealflow lab down --name NAME (see `sealflow lab ls`)")
			if err != nil {
				return err
			}
			if err := lab.Down(labContext(c), name); err != nil {
				return labError(err)
			}
			return nil
		},
	}
}

func labExecCommand() *cli.Command {
	return &cli.Command{
		Name:      "exec",
		Usage:     "run a command inside a lab host (as root), e.g. sealflow lab exec NAME m1 -- ip addr",
		ArgsUsage: "NAME HOST -- COMMAND [ARG...]",
		// Everything after HOST belongs to the command.
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) >= 3 && args[2] == "--" {
				args = append(args[:2:2], args[3:]...)
			}
			if len(args) < 3 {
				return exitWith(2, errors.New("lab exec: usage: sealflow lab exec NAME HOST -- COMMAND [ARG...]"))
			}
			l, err := lab.Open(args[0])
			if err != nil {
				return labError(err)
			}
			cmd, err := l.Command(labContext(c), args[1], args[2:]...)
			if err != nil {
				return labError(err)
			}
			// The user's terminal: stay in the foreground process group
			// so that the command can read it and ^C reaches it.
			cmd.SysProcAttr = nil
			cmd.Cancel = func() error { return cmd.Process.Kill() }
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, c.App.Writer, c.App.ErrWriter
			if term := os.Getenv("TERM"); term != "" {
				cmd.Env = append(cmd.Env, "TERM="+term)
			}
			err = cmd.Run()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code := ee.ExitCode()
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					code = 128 + int(ws.Signal())
				}
				return exitWith(code, fmt.Errorf("lab exec %s %s: %s: exit status %d", args[0], args[1], args[2], code))
			}
			if err != nil {
				return exitWith(1, fmt.Errorf("lab exec %s %s: %w", args[0], args[1], err))
			}
			return nil
		},
	}
}

func labLsCommand() *cli.Command {
	return &cli.Command{
		Name:  "ls",
		Usage: "list the labs of this machine and their hosts",
		Action: func(c *cli.Context) error {
			labs, err := lab.List()
			if err != nil {
				return labError(err)
			}
			if len(labs) == 0 {
				fmt.Fprintln(c.App.Writer, "no labs (make one: sealflow lab up --name NAME)")
				return nil
			}
			for _, l := range labs {
				printLab(c.App.Writer, l)
			}
			return nil
		},
	}
}

// printLab prints a lab, its control namespace and its hosts.
func printLab(out interface{ Write([]byte) (int, error) }, l *lab.Lab) {
	rate := ""
	if l.Rate != "" {
		rate = "  rate " + l.Rate + " each way"
	}
	fmt.Fprintf(out, "lab %s  subnet %s  dir %s%s\n", l.Name, l.Subnet, l.Dir, rate)
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	if l.ControlNetns != "" {
		fmt.Fprintf(tw, "  control\t%s\t\tnetns %s\t\n", l.ControlAddress, l.ControlNetns)
	}
	for _, h := range l.Hosts {
		status := "running"
		if !l.Running(h.Name) {
			status = "gone (sealflow lab down --name " + l.Name + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\tinit %d\tlink %s\t%s\n", h.Name, h.Address, h.Group, h.PID, h.Link, status)
	}
	tw.Flush()
}

func labEgressCommand() *cli.Command {
	return &cli.Command{
		Name:      "egress",
		Usage:     "print the bytes the control machine (or --host) has sent into the lab so far",
		ArgsUsage: "[NAME]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "lab name"},
			&cli.StringFlag{Name: "host", Usage: "the bytes this `HOST` has sent on its link instead"},
		},
		Action: func(c *cli.Context) error {
			name, err := labName(c, "lab egress: give the lab's name: sealflow lab egress --name NAME [--host HOST]")
			if err != nil {
				return err
			}
			l, err := lab.Open(name)
			if err != nil {
				return labError(err)
			}
			var n uint64
			if h := c.String("host"); h != "" {
				if _, ok := l.Host(h); !ok {
					return exitWith(2, fmt.Errorf("lab egress: lab %s has no host %q (see `sealflow lab ls`)", name, h))
				}
				n, err = l.HostEgress(h)
			} else {
				n, err = l.ControlEgress()
			}
			if err != nil {
				return labError(err)
			}
			fmt.Fprintln(c.App.Writer, n)
			return nil
		},
	}
}

// labContext is the command's context (never nil).
func labContext(c *cli.Context) context.Context {
	if c.Context != nil {
		return c.Context
	}
	return context.Background()
}

// exitWith gives err the process exit code code.
func exitWith(code int, err error) error {
	return &app.ExitError{Code: code, Err: err}
}

// labError maps what the machine lacks (lab.NeedError) to exit code 2,
// other errors to 1.
func labError(err error) error {
	var need lab.NeedError
	var input lab.InputError
	if errors.As(err, &need) || errors.As(err, &input) {
		return exitWith(2, err)
	}
	return exitWith(1, err)
}
