package lvscare

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/sealflow/sealflow/lvscare/podspec"
)

// The backend pin. A virtual server programmed by one backend and then by
// the other would exist twice (an IPVS service and nftables DNAT rules)
// and fight. So the first program of a virtual server records the backend
// it chose in DIR/lvscare-VIP-PORT.backend, next to the daemon's lock;
// every later run for it (the rules phase's --run-once, the daemon, in
// --mode auto) uses that backend even when the other is there too; an
// explicit --mode that names the other is refused (PinnedError); clean
// removes the pin. DIR is on tmpfs (/run): the pin goes at reboot with
// the kernel rules it describes.

// PinnedError is an explicit --mode that contradicts the backend the
// virtual server is pinned to.
type PinnedError struct {
	VS     netip.AddrPort
	Pinned podspec.Mode // the backend that holds VS
	Want   podspec.Mode // the one asked for
	File   string
}

func (e *PinnedError) Error() string {
	return fmt.Sprintf("virtual server %s is held by the %s backend (pinned in %s), not %s: "+
		"to switch, remove it first with `sealflow lvscare clean --vs %s`, then run with --mode %s",
		e.VS, e.Pinned, e.File, e.Want, e.VS, e.Want)
}

// PinFile is where the backend of vs is pinned.
func PinFile(dir string, vs netip.AddrPort) string {
	return filepath.Join(dir, fmt.Sprintf("lvscare-%s-%d.backend", vs.Addr(), vs.Port()))
}

// ReadPin returns the backend vs is pinned to, or "" when it has no pin.
func ReadPin(dir string, vs netip.AddrPort) (podspec.Mode, error) {
	b, err := os.ReadFile(PinFile(dir, vs))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the backend pin of %s: %w", vs, err)
	}
	switch m := podspec.Mode(strings.TrimSpace(string(b))); m {
	case podspec.ModeIPVS, podspec.ModeNFTables:
		return m, nil
	}
	return "", fmt.Errorf("the backend pin of %s (%s) holds %q, not ipvs or nftables: remove the file", vs, PinFile(dir, vs), strings.TrimSpace(string(b)))
}

// writePin pins vs to m unless it is pinned already; it returns the pin
// in force. The first writer wins: the file is linked into place, which
// fails when another process pinned vs in the meantime.
func writePin(dir string, vs netip.AddrPort, m podspec.Mode) (podspec.Mode, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("pin the backend of %s: %w", vs, err)
	}
	tmp, err := os.CreateTemp(dir, ".lvscare-pin-*")
	if err != nil {
		return "", fmt.Errorf("pin the backend of %s: %w", vs, err)
	}
	defer os.Remove(tmp.Name())
	_, err = io.WriteString(tmp, string(m)+"\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err != nil {
		return "", fmt.Errorf("pin the backend of %s: %w", vs, err)
	}
	if err := os.Link(tmp.Name(), PinFile(dir, vs)); errors.Is(err, os.ErrExist) {
		return ReadPin(dir, vs)
	} else if err != nil {
		return "", fmt.Errorf("pin the backend of %s: %w", vs, err)
	}
	return m, nil
}

// removePin removes the pin of vs; it reports whether there was one.
func removePin(dir string, vs netip.AddrPort) (bool, error) {
	err := os.Remove(PinFile(dir, vs))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("remove the backend pin of %s: %w", vs, err)
	}
	return true, nil
}

// kernel is what choosing a backend asks of the machine: whether it has
// IPVS, and a backend of a concrete mode. Tests give their own.
type kernel struct {
	hasIPVS func() bool
	open    func(podspec.Mode) (Backend, error)
}

func systemKernel() kernel {
	return kernel{hasIPVS: IPVSAvailable, open: func(m podspec.Mode) (Backend, error) {
		if m == podspec.ModeIPVS {
			return NewIPVS()
		}
		return NewNFTables(0)
	}}
}

// modes lists the concrete backends mode covers on this kernel.
func (k kernel) modes(mode podspec.Mode) []podspec.Mode {
	if mode == podspec.ModeAuto || mode == "" {
		if k.hasIPVS() {
			return []podspec.Mode{podspec.ModeIPVS, podspec.ModeNFTables}
		}
		return []podspec.Mode{podspec.ModeNFTables}
	}
	return []podspec.Mode{mode}
}

// choose returns the backend that programs vs for mode, and whether vs
// has no pin yet (the caller pins it with writePin once the backend
// opened: a backend the kernel lacks is never pinned). In auto mode the
// pin decides; without one, a backend that already holds vs (rules from
// before pins existed) is kept, else IPVS when the kernel has it, else
// nftables.
func (k kernel) choose(ctx context.Context, dir string, vs netip.AddrPort, mode podspec.Mode, log *slog.Logger) (podspec.Mode, bool, error) {
	pinned, err := ReadPin(dir, vs)
	if err != nil {
		return "", false, err
	}
	file := PinFile(dir, vs)
	if mode != podspec.ModeAuto && mode != "" {
		if pinned != "" && pinned != mode {
			return "", false, &PinnedError{VS: vs, Pinned: pinned, Want: mode, File: file}
		}
		return mode, pinned == "", nil
	}
	if pinned != "" {
		if pinned == podspec.ModeIPVS && !k.hasIPVS() {
			return "", false, fmt.Errorf("virtual server %s is pinned to the ipvs backend (%s) but the kernel has no IPVS now: "+
				"load module ip_vs, or remove it with `sealflow lvscare clean --vs %s` and run again", vs, file, vs)
		}
		log.Info("lvscare: using the backend the virtual server is pinned to", "vs", vs, "backend", pinned, "pin", file)
		return pinned, false, nil
	}
	m := podspec.ModeNFTables
	if k.hasIPVS() {
		m = podspec.ModeIPVS
	}
	for _, c := range k.modes(podspec.ModeAuto) {
		if k.holds(ctx, c, vs) {
			m = c
			break
		}
	}
	return m, true, nil
}

// openPinned opens the backend choose picked and pins it when needed. When
// another process pinned vs in the meantime, its pin wins: auto mode
// follows it, an explicit mode is refused.
func (k kernel) openPinned(ctx context.Context, dir string, vs netip.AddrPort, mode podspec.Mode, log *slog.Logger) (Backend, error) {
	m, unpinned, err := k.choose(ctx, dir, vs, mode, log)
	if err != nil {
		return nil, err
	}
	b, err := k.open(m)
	if err != nil || !unpinned {
		return b, err
	}
	pinned, err := writePin(dir, vs, m)
	if err != nil {
		closeBackend(b)
		return nil, err
	}
	if pinned == m {
		log.Info("lvscare: backend chosen and pinned", "vs", vs, "backend", m, "pin", PinFile(dir, vs))
		return b, nil
	}
	closeBackend(b)
	if mode != podspec.ModeAuto && mode != "" {
		return nil, &PinnedError{VS: vs, Pinned: pinned, Want: mode, File: PinFile(dir, vs)}
	}
	log.Info("lvscare: using the backend the virtual server is pinned to", "vs", vs, "backend", pinned, "pin", PinFile(dir, vs))
	return k.open(pinned)
}

// holds reports whether backend m has vs; a backend that cannot be read
// does not hold it.
func (k kernel) holds(ctx context.Context, m podspec.Mode, vs netip.AddrPort) bool {
	b, err := k.open(m)
	if err != nil {
		return false
	}
	defer closeBackend(b)
	_, err = b.Get(ctx, vs)
	return err == nil
}
