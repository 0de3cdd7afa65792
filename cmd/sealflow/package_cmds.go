package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/sealflow/sealflow/internal/app"
	"github.com/sealflow/sealflow/internal/kubepkg"
	"github.com/sealflow/sealflow/internal/version"
)

// packageCommand is `sealflow package build|inspect|verify`: offline
// Kubernetes packages.
func packageCommand(streams app.IO) *cli.Command {
	return &cli.Command{
		Name:  "package",
		Usage: "build, inspect and verify offline Kubernetes packages",
		Subcommands: []*cli.Command{
			{
				Name:      "build",
				Usage:     "fetch every file and image a package manifest names and write the package",
				ArgsUsage: " ",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "package manifest `FILE` (default: the built-in one of --version)"},
					&cli.StringFlag{Name: "version", Usage: "Kubernetes `VERSION` of the built-in manifest (built in: " + strings.Join(kubepkg.DefaultVersions(), ", ") + ")"},
					&cli.StringFlag{Name: "arch", Usage: "architecture: " + strings.Join(kubepkg.Arches, " or ") + " (default: the manifest's)"},
					&cli.StringSliceFlag{Name: "mirror", Usage: "fetch from a mirror: `FROM=TO` (https://dl.k8s.io=http://mirror/k8s, registry.k8s.io=mirror:5000; repeatable)"},
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "the package `FILE` (default kubeVERSION.tar.gz)"},
					&cli.StringFlag{Name: "cache", Value: defaultPackageCache(), Usage: "keep verified downloads in `DIR` for the next build"},
					&cli.BoolFlag{Name: "no-cache", Usage: "download everything again and keep nothing"},
					&cli.StringFlag{Name: "sealflow-binary", Usage: "sealflow `FILE` for the package's architecture, for sealflow's image (default: this one)"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return app.Invalidf("package build takes no arguments (got %q): the manifest is -f FILE", c.Args().First())
					}
					cache := c.String("cache")
					if c.Bool("no-cache") {
						cache = ""
					}
					return app.PackageBuild(c.Context, streams, app.PackageBuildOptions{
						ManifestFile:    c.String("file"),
						Version:         c.String("version"),
						Arch:            c.String("arch"),
						Mirrors:         c.StringSlice("mirror"),
						Out:             c.String("output"),
						Cache:           cache,
						SealflowBinary:  c.String("sealflow-binary"),
						SealflowVersion: version.Version,
					})
				},
			},
			{
				Name:      "inspect",
				Usage:     "show what a package holds: versions, sources, files, images",
				ArgsUsage: "PKG",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print manifest.json"}},
				Action: func(c *cli.Context) error {
					pkg, err := packageArg(c)
					if err != nil {
						return err
					}
					return app.PackageInspect(streams, pkg, c.Bool("json"))
				},
			},
			{
				Name:      "verify",
				Usage:     "check every file and image of a package against its manifest.json",
				ArgsUsage: "PKG",
				Action: func(c *cli.Context) error {
					pkg, err := packageArg(c)
					if err != nil {
						return err
					}
					return app.PackageVerify(streams, pkg)
				},
			},
		},
	}
}

func packageArg(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", app.Invalidf("%s needs exactly one PKG file (got %d arguments)", c.Command.Name, c.NArg())
	}
	return c.Args().First(), nil
}

// defaultPackageCache is ~/.cache/sealflow/downloads (or $XDG_CACHE_HOME's).
func defaultPackageCache() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "sealflow", "downloads")
}
