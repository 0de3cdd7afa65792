package lvscare

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/sealflow/sealflow/lvscare/podspec"
)

// OpenBackend returns the backend for mode in the current network
// namespace. ModeAuto picks IPVS when the kernel has it, else nftables,
// and logs which; it does not consult the backend pin (Care, Clean and
// Status do). Close the backend (io.Closer) when done.
func OpenBackend(mode podspec.Mode, log *slog.Logger) (Backend, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch mode {
	case podspec.ModeIPVS:
		return NewIPVS()
	case podspec.ModeNFTables:
		return NewNFTables(0)
	case podspec.ModeAuto, "":
		if IPVSAvailable() {
			log.Info("lvscare: the kernel has IPVS; using the ipvs backend")
			return NewIPVS()
		}
		log.Info("lvscare: the kernel has no IPVS; using the nftables backend")
		return NewNFTables(0)
	}
	return nil, fmt.Errorf("mode %q: want auto, ipvs or nftables", mode)
}

func closeBackend(b Backend) {
	if c, ok := b.(io.Closer); ok {
		_ = c.Close()
	}
}

// Care validates o and keeps o.VS true with the backend o.Mode selects
// (through the pin in o.LockDir: see PinFile): until ctx ends (rules
// stay), or for one round with o.RunOnce.
func Care(ctx context.Context, o podspec.Options, log *slog.Logger) error {
	return systemKernel().care(ctx, o, SystemClock{}, log)
}

func (k kernel) care(ctx context.Context, o podspec.Options, clock Clock, log *slog.Logger) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b, err := k.openPinned(ctx, lockDir(o.LockDir), o.VS, o.Mode, log)
	if err != nil {
		return err
	}
	defer closeBackend(b)
	return CareWith(ctx, o, b, clock, log)
}

func lockDir(dir string) string {
	if dir == "" {
		return DefaultLockDir
	}
	return dir
}

// CareWith is Care on a given backend and clock (no pin).
func CareWith(ctx context.Context, o podspec.Options, b Backend, clock Clock, log *slog.Logger) error {
	if err := o.Validate(); err != nil {
		return err
	}
	probe, err := NewProber(o.Health)
	if err != nil {
		return err
	}
	d, err := NewDaemon(Config{
		VS: o.VS, RS: o.RS, Interval: o.Interval, Timeout: o.Health.Timeout,
		Rise: o.Rise, Fall: o.Fall, Resync: o.Resync,
		Backend: b, Probe: probe, Clock: clock, Log: log,
	})
	if err != nil {
		return err
	}
	if o.RunOnce {
		if err := d.Once(ctx); err != nil {
			return fmt.Errorf("lvscare run-once %s: %w", o.VS, err)
		}
		return nil
	}
	return d.Run(ctx)
}

// Clean removes vs and what was added for it (rules, address or route)
// from the backend mode selects, ModeAuto every backend the kernel has,
// and removes the backend pin in dir (unless mode names a backend other
// than the pinned one, which still holds vs). It returns ErrNotFound when
// nothing of vs was there, pin included.
func Clean(ctx context.Context, vs netip.AddrPort, mode podspec.Mode, dir string, log *slog.Logger) error {
	return systemKernel().clean(ctx, vs, mode, lockDir(dir), log)
}

func (k kernel) clean(ctx context.Context, vs netip.AddrPort, mode podspec.Mode, dir string, log *slog.Logger) error {
	if err := podspec.CheckAddr("--vs", vs); err != nil {
		return err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pinned, err := ReadPin(dir, vs)
	if err != nil {
		return err
	}
	found := false
	for _, m := range k.modes(mode) {
		b, err := k.open(m)
		if err != nil {
			return err
		}
		err = b.Delete(ctx, vs)
		closeBackend(b)
		switch {
		case err == nil:
			found = true
			log.Info("lvscare: virtual server removed", "vs", vs, "backend", m)
		case !errors.Is(err, ErrNotFound):
			return fmt.Errorf("clean %s (%s): %w", vs, m, err)
		}
	}
	if mode == podspec.ModeAuto || mode == "" || pinned == "" || pinned == mode {
		removed, err := removePin(dir, vs)
		if err != nil {
			return err
		}
		if removed {
			found = true
			log.Info("lvscare: backend pin removed", "vs", vs, "backend", pinned, "pin", PinFile(dir, vs))
		}
	} else {
		log.Info("lvscare: the virtual server stays pinned to its backend", "vs", vs, "backend", pinned, "pin", PinFile(dir, vs))
	}
	if !found {
		return fmt.Errorf("clean %s: %w", vs, ErrNotFound)
	}
	return nil
}

// StatusReport is what `lvscare status` shows: the kernel's virtual
// server, the backend that has it and the backend it is pinned to.
type StatusReport struct {
	Service
	Backend string
	Pinned  podspec.Mode // "" without a pin
	PinFile string
}

// Status reads vs from the backend mode selects; ModeAuto looks in the
// pinned backend first, then in each the kernel has. The pin in dir is
// reported with it. Without vs anywhere the error is ErrNotFound (and
// says the pin, if there is one).
func Status(ctx context.Context, vs netip.AddrPort, mode podspec.Mode, dir string) (StatusReport, error) {
	return systemKernel().status(ctx, vs, mode, lockDir(dir))
}

func (k kernel) status(ctx context.Context, vs netip.AddrPort, mode podspec.Mode, dir string) (StatusReport, error) {
	if err := podspec.CheckAddr("--vs", vs); err != nil {
		return StatusReport{}, err
	}
	pinned, err := ReadPin(dir, vs)
	if err != nil {
		return StatusReport{}, err
	}
	r := StatusReport{Pinned: pinned, PinFile: PinFile(dir, vs)}
	modes := k.modes(mode)
	if (mode == podspec.ModeAuto || mode == "") && pinned != "" {
		modes = append([]podspec.Mode{pinned}, slices.DeleteFunc(modes, func(m podspec.Mode) bool { return m == pinned })...)
	}
	for _, m := range modes {
		b, err := k.open(m)
		if err != nil {
			return StatusReport{}, err
		}
		svc, err := b.Get(ctx, vs)
		closeBackend(b)
		if err == nil {
			r.Service, r.Backend = svc, string(m)
			return r, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return StatusReport{}, fmt.Errorf("status of %s (%s): %w", vs, m, err)
		}
	}
	if pinned != "" {
		return r, fmt.Errorf("status of %s: %w (pinned to the %s backend in %s)", vs, ErrNotFound, pinned, r.PinFile)
	}
	return r, fmt.Errorf("status of %s: %w", vs, ErrNotFound)
}

// FormatStatus renders r for `lvscare status`.
func FormatStatus(r StatusReport) string {
	svc := r.Service
	s := fmt.Sprintf("virtual server %s (%s)", svc.VS, r.Backend)
	if !svc.Intact {
		s += " incomplete"
	}
	s += "\n"
	switch r.Pinned {
	case "":
		s += "  backend not pinned\n"
	case podspec.Mode(r.Backend):
		s += fmt.Sprintf("  backend pinned: %s (%s)\n", r.Pinned, r.PinFile)
	default:
		s += fmt.Sprintf("  backend pinned: %s (%s), but %s has it: clean it and run again\n", r.Pinned, r.PinFile, r.Backend)
	}
	if len(svc.RS) == 0 {
		return s + "  no real servers: connections are refused\n"
	}
	for _, r := range svc.RS {
		s += "  -> " + r.String() + "\n"
	}
	return s
}
