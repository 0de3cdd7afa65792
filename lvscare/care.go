package lvscare

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"

	"github.com/sealflow/sealflow/lvscare/podspec"
)

// OpenBackend returns the backend for mode in the current network
// namespace. ModeAuto picks IPVS when the kernel has it, else nftables,
// and logs which. Close the backend (io.Closer) when done.
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

// Care validates o and keeps o.VS true with the backend o.Mode selects:
// until ctx ends (rules stay), or for one round with o.RunOnce.
func Care(ctx context.Context, o podspec.Options, log *slog.Logger) error {
	if err := o.Validate(); err != nil {
		return err
	}
	b, err := OpenBackend(o.Mode, log)
	if err != nil {
		return err
	}
	defer closeBackend(b)
	return CareWith(ctx, o, b, SystemClock{}, log)
}

// CareWith is Care on a given backend and clock.
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
// from the backend mode selects; ModeAuto cleans both backends the kernel
// has. It returns ErrNotFound when nothing of vs was there.
func Clean(ctx context.Context, vs netip.AddrPort, mode podspec.Mode, log *slog.Logger) error {
	if err := podspec.CheckAddr("--vs", vs); err != nil {
		return err
	}
	found := false
	for _, m := range modesFor(mode) {
		b, err := OpenBackend(m, log)
		if err != nil {
			return err
		}
		err = b.Delete(ctx, vs)
		closeBackend(b)
		switch {
		case err == nil:
			found = true
			if log != nil {
				log.Info("lvscare: virtual server removed", "vs", vs, "backend", m)
			}
		case !errors.Is(err, ErrNotFound):
			return fmt.Errorf("clean %s (%s): %w", vs, m, err)
		}
	}
	if !found {
		return fmt.Errorf("clean %s: %w", vs, ErrNotFound)
	}
	return nil
}

// Status reads vs from the backend mode selects; ModeAuto looks in each
// backend the kernel has. The backend's name is returned with it.
func Status(ctx context.Context, vs netip.AddrPort, mode podspec.Mode) (Service, string, error) {
	if err := podspec.CheckAddr("--vs", vs); err != nil {
		return Service{}, "", err
	}
	for _, m := range modesFor(mode) {
		b, err := OpenBackend(m, nil)
		if err != nil {
			return Service{}, "", err
		}
		svc, err := b.Get(ctx, vs)
		closeBackend(b)
		if err == nil {
			return svc, string(m), nil
		}
		if !errors.Is(err, ErrNotFound) {
			return Service{}, "", fmt.Errorf("status of %s (%s): %w", vs, m, err)
		}
	}
	return Service{}, "", fmt.Errorf("status of %s: %w", vs, ErrNotFound)
}

// modesFor lists the concrete backends mode covers.
func modesFor(mode podspec.Mode) []podspec.Mode {
	if mode == podspec.ModeAuto || mode == "" {
		if IPVSAvailable() {
			return []podspec.Mode{podspec.ModeIPVS, podspec.ModeNFTables}
		}
		return []podspec.Mode{podspec.ModeNFTables}
	}
	return []podspec.Mode{mode}
}

// FormatStatus renders svc for `lvscare status`.
func FormatStatus(svc Service, backend string) string {
	s := fmt.Sprintf("virtual server %s (%s)", svc.VS, backend)
	if !svc.Intact {
		s += " incomplete"
	}
	s += "\n"
	if len(svc.RS) == 0 {
		return s + "  no real servers: connections are refused\n"
	}
	for _, r := range svc.RS {
		s += "  -> " + r.String() + "\n"
	}
	return s
}
