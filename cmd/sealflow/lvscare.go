package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/sealflow/sealflow/lvscare"
	"github.com/sealflow/sealflow/lvscare/podspec"
)

// lvscareCommand is `sealflow lvscare care|clean|status`: the daemon that
// keeps a kernel virtual server (VIP:PORT → real servers) true. The flag
// names of the original LVScare (--vs, --rs, --health-path, --health-schem,
// --run-once) keep working.
func lvscareCommand() *cli.Command {
	modeFlag := &cli.StringFlag{Name: "mode", Value: string(podspec.ModeAuto),
		Usage: "backend: auto (IPVS when the kernel has it, else nftables), ipvs or nftables"}
	lockDirFlag := &cli.StringFlag{Name: "lock-dir", Value: lvscare.DefaultLockDir,
		Usage: "`DIR` of the lock that keeps a second daemon off the same virtual server, and of the backend pin (the backend the first program chose)"}
	vsFlag := &cli.StringFlag{Name: "vs", Required: true, Usage: "virtual server `IP:PORT`, e.g. " + podspec.DefaultVIP + ":6443"}
	return &cli.Command{
		Name:  "lvscare",
		Usage: "keep a kernel virtual server (VIP:PORT → real servers) true",
		Subcommands: []*cli.Command{
			{
				Name:  "care",
				Usage: "probe the real servers and keep the kernel's virtual server in line (until SIGTERM; rules stay)",
				Flags: []cli.Flag{
					vsFlag,
					&cli.StringSliceFlag{Name: "rs", Required: true, Usage: "real server `IP:PORT` (repeat for each)"},
					&cli.StringFlag{Name: "health-path", Value: podspec.DefaultHealthPath, Usage: "HTTP(S) path probed"},
					&cli.StringFlag{Name: "health-schem", Aliases: []string{"health-scheme"}, Value: podspec.DefaultHealthScheme, Usage: "probe: https, http or tcp"},
					&cli.StringFlag{Name: "health-status", Value: podspec.DefaultHealthStatus.String(), Usage: "HTTP status codes that count as healthy"},
					&cli.StringFlag{Name: "health-timeout", Value: podspec.DefaultHealthTimeout.String(), Usage: "timeout of one probe (a bare number is seconds)"},
					&cli.StringFlag{Name: "health-ca", Usage: "CA `FILE` to verify HTTPS servers with (default: accept any certificate)"},
					&cli.StringFlag{Name: "interval", Value: podspec.DefaultInterval.String(), Usage: "time between probes (a bare number is seconds)"},
					&cli.IntFlag{Name: "rise", Value: podspec.DefaultRise, Usage: "successes in a row before a server comes back"},
					&cli.IntFlag{Name: "fall", Value: podspec.DefaultFall, Usage: "failures in a row before a server is taken out"},
					modeFlag,
					&cli.BoolFlag{Name: "run-once", Usage: "probe once, apply, exit"},
					&cli.BoolFlag{Name: "debug", Usage: "log every failed probe"},
					lockDirFlag,
				},
				Action: noArgs(lvscareCare),
			},
			{
				Name:   "clean",
				Usage:  "remove the virtual server and what was added for it (rules, address or route), and its backend pin",
				Flags:  []cli.Flag{vsFlag, modeFlag, lockDirFlag},
				Action: noArgs(lvscareClean),
			},
			{
				Name:   "status",
				Usage:  "show the kernel's virtual server, its real servers and the backend it is pinned to",
				Flags:  []cli.Flag{vsFlag, modeFlag, lockDirFlag},
				Action: noArgs(lvscareStatus),
			},
		},
	}
}

func lvscareLogger(c *cli.Context) *slog.Logger {
	level := slog.LevelInfo
	if c.Bool("debug") {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
}

// seconds parses a duration; a bare number is seconds, as the original
// LVScare's --interval was.
func seconds(flag, s string) (time.Duration, error) {
	if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("--%s %q: want a duration such as 1s or 500ms", flag, s)
	}
	return d, nil
}

func lvscareOptions(c *cli.Context) (podspec.Options, error) {
	o := podspec.DefaultOptions()
	var errs []error
	var err error
	if o.VS, err = podspec.ParseAddrPort("--vs", c.String("vs")); err != nil {
		errs = append(errs, err)
	}
	for _, r := range c.StringSlice("rs") {
		ap, err := podspec.ParseAddrPort("--rs", r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		o.RS = append(o.RS, ap)
	}
	o.Health.Path = c.String("health-path")
	o.Health.Scheme = c.String("health-schem")
	o.Health.CAFile = c.String("health-ca")
	if o.Health.Status, err = podspec.ParseStatusRange(c.String("health-status")); err != nil {
		errs = append(errs, fmt.Errorf("--health-status: %w", err))
	}
	if o.Health.Timeout, err = seconds("health-timeout", c.String("health-timeout")); err != nil {
		errs = append(errs, err)
	}
	if o.Interval, err = seconds("interval", c.String("interval")); err != nil {
		errs = append(errs, err)
	}
	o.Rise, o.Fall = c.Int("rise"), c.Int("fall")
	if o.Mode, err = podspec.ParseMode(c.String("mode")); err != nil {
		errs = append(errs, fmt.Errorf("--%w", err))
	}
	o.RunOnce = c.Bool("run-once")
	o.LockDir = c.String("lock-dir")
	if err := errors.Join(errs...); err != nil {
		return o, err
	}
	return o, o.Validate()
}

// noArgs refuses positional arguments: the flag parser stops at the
// first one, so `care --vs X stray --run-once` would silently drop
// --run-once and run as a daemon.
func noArgs(action cli.ActionFunc) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() > 0 {
			return usageError{fmt.Errorf("lvscare %s: unexpected argument %q (every option is a flag; flags after it were not read)", c.Command.Name, c.Args().First())}
		}
		return action(c)
	}
}

func lvscareCare(c *cli.Context) error {
	o, err := lvscareOptions(c)
	if err != nil {
		return usageError{fmt.Errorf("lvscare care: %w", err)}
	}
	if !o.RunOnce {
		// One daemon per virtual server: two would undo each other's rules.
		release, err := lvscare.LockVS(c.String("lock-dir"), o.VS)
		var le *lvscare.LockedError
		if errors.As(err, &le) {
			return usageError{fmt.Errorf("lvscare care: %w", err)}
		}
		if err != nil {
			return fmt.Errorf("lvscare care: %w", err)
		}
		defer release()
	}
	// SIGTERM ends c.Context (see run); the daemon then returns and leaves
	// the rules in place.
	err = lvscare.Care(c.Context, o, lvscareLogger(c))
	var pe *lvscare.PinnedError
	if errors.As(err, &pe) {
		return usageError{fmt.Errorf("lvscare care: %w", err)}
	}
	return err
}

func lvscareClean(c *cli.Context) error {
	vs, err := podspec.ParseAddrPort("--vs", c.String("vs"))
	if err != nil {
		return usageError{err}
	}
	mode, err := podspec.ParseMode(c.String("mode"))
	if err != nil {
		return usageError{fmt.Errorf("--%w", err)}
	}
	return lvscare.Clean(c.Context, vs, mode, c.String("lock-dir"), lvscareLogger(c))
}

func lvscareStatus(c *cli.Context) error {
	vs, err := podspec.ParseAddrPort("--vs", c.String("vs"))
	if err != nil {
		return usageError{err}
	}
	mode, err := podspec.ParseMode(c.String("mode"))
	if err != nil {
		return usageError{fmt.Errorf("--%w", err)}
	}
	r, err := lvscare.Status(c.Context, vs, mode, c.String("lock-dir"))
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(c.App.Writer, lvscare.FormatStatus(r))
	return err
}
