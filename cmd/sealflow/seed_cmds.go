package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/sealflow/sealflow/internal/app"
)

// The seed-style commands: sealos-like shortcuts that run the shipped
// plans (ha, add-node, clean) on hosts given by address.

func seedFlags(withPackage bool) []cli.Flag {
	flags := []cli.Flag{
		&cli.StringSliceFlag{Name: "master", Usage: "master `IP`s (repeatable; ranges like 192.168.0.2-192.168.0.4)"},
		&cli.StringSliceFlag{Name: "node", Usage: "worker `IP`s (repeatable; ranges like 192.168.0.5-192.168.0.9)"},
		&cli.StringFlag{Name: "user", Usage: "SSH user (default root)"},
		&cli.IntFlag{Name: "port", Usage: "SSH port (default 22)"},
		&cli.StringFlag{Name: "pk", Usage: "SSH private key `FILE`"},
		&cli.StringFlag{Name: "vip", Usage: "virtual IP of the masters on every worker (default 10.255.255.253)"},
		&cli.StringSliceFlag{Name: "set", Usage: "more plan variables (`key=value`), e.g. skip_phases=preflight"},
	}
	if withPackage {
		flags = append(flags,
			&cli.StringFlag{Name: "pkg", Usage: "offline package `FILE` (kube1.x.y.tar.gz), uploaded to every host"},
			&cli.StringFlag{Name: "pkg-url", Usage: "offline package `URL` each host downloads"},
			&cli.StringFlag{Name: "version", Usage: "Kubernetes version, e.g. v1.34.4"},
			&cli.StringFlag{Name: "kubeadm-config", Usage: "kubeadm configuration `FILE` used as given"},
			&cli.StringFlag{Name: "kubeadm-join-config", Usage: "kubeadm JoinConfiguration `FILE` for every join (sealflow fills the discovery, node name and a master's key and address where it leaves them empty)"},
			&cli.StringFlag{Name: "podcidr", Usage: "pod network (default 100.64.0.0/10)"},
			&cli.StringFlag{Name: "svccidr", Usage: "service network (default 10.96.0.0/12)"},
		)
	}
	return append(flags, execFlags()...)
}

func seedOptions(c *cli.Context, streams app.IO) (app.SeedOptions, error) {
	eo, err := execOptions(c)
	if err != nil {
		return app.SeedOptions{}, err
	}
	if c.NArg() > 0 {
		return app.SeedOptions{}, app.Invalidf("%s takes no arguments (got %q): give hosts with --master and --node", c.Command.Name, c.Args().First())
	}
	if eo.Connect.Password != "" {
		fmt.Fprintln(streams.Stderr, "warning: --passwd shows the password in ps; prefer --password-stdin")
	}
	return app.SeedOptions{
		ExecOptions:       eo,
		Masters:           c.StringSlice("master"),
		Nodes:             c.StringSlice("node"),
		User:              c.String("user"),
		Port:              c.Int("port"),
		KeyFile:           c.String("pk"),
		VIP:               c.String("vip"),
		Set:               c.StringSlice("set"),
		Pkg:               stringIf(c, "pkg"),
		PkgURL:            stringIf(c, "pkg-url"),
		Version:           stringIf(c, "version"),
		KubeadmConfig:     stringIf(c, "kubeadm-config"),
		KubeadmJoinConfig: stringIf(c, "kubeadm-join-config"),
		PodCIDR:           stringIf(c, "podcidr"),
		SvcCIDR:           stringIf(c, "svccidr"),
		All:               c.Command.Name == "clean" && c.Bool("all"),
	}, nil
}

func stringIf(c *cli.Context, name string) string {
	for _, f := range c.Command.Flags {
		if f.Names()[0] == name {
			return c.String(name)
		}
	}
	return ""
}

func initCommand(streams app.IO) *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "build an HA Kubernetes cluster from an offline package (the shipped ha plan)",
		Flags: seedFlags(true),
		Action: func(c *cli.Context) error {
			o, err := seedOptions(c, streams)
			if err != nil {
				return err
			}
			return app.Init(c.Context, o, streams)
		},
	}
}

func joinCommand(streams app.IO) *cli.Command {
	return &cli.Command{
		Name:  "join",
		Usage: "add masters or nodes to the cluster built by init (the shipped add-node plan)",
		Flags: seedFlags(true),
		Action: func(c *cli.Context) error {
			o, err := seedOptions(c, streams)
			if err != nil {
				return err
			}
			return app.Join(c.Context, o, streams)
		},
	}
}

func cleanCommand(streams app.IO) *cli.Command {
	return &cli.Command{
		Name:  "clean",
		Usage: "undo the install on hosts, or on the whole cluster with --all (the shipped clean plan)",
		Flags: append(seedFlags(false), &cli.BoolFlag{Name: "all", Usage: "every host of the cluster built by init"}),
		Action: func(c *cli.Context) error {
			o, err := seedOptions(c, streams)
			if err != nil {
				return err
			}
			return app.Clean(c.Context, o, streams)
		},
	}
}
