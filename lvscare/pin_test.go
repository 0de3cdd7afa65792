package lvscare

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sealflow/sealflow/lvscare/podspec"
)

// fakeKernel has a Fake per backend and an IPVS probe the test sets.
type fakeKernel struct {
	ipvs, nft *Fake
	hasIPVS   atomic.Bool
}

func newFakeKernel(hasIPVS bool) *fakeKernel {
	k := &fakeKernel{ipvs: NewFake(), nft: NewFake()}
	k.hasIPVS.Store(hasIPVS)
	return k
}

func (f *fakeKernel) kernel() kernel {
	return kernel{hasIPVS: f.hasIPVS.Load, open: func(m podspec.Mode) (Backend, error) {
		if m == podspec.ModeIPVS {
			if !f.hasIPVS.Load() {
				return nil, errors.New("the kernel has no IPVS")
			}
			return f.ipvs, nil
		}
		return f.nft, nil
	}}
}

// holder says which backend has vs: "ipvs", "nftables", "both" or "".
func (f *fakeKernel) holder(vs netip.AddrPort) string {
	ctx := context.Background()
	_, e1 := f.ipvs.Get(ctx, vs)
	_, e2 := f.nft.Get(ctx, vs)
	switch {
	case e1 == nil && e2 == nil:
		return "both"
	case e1 == nil:
		return "ipvs"
	case e2 == nil:
		return "nftables"
	}
	return ""
}

// runOnce is `lvscare care --run-once` (the rules phase) against one real
// server listening on this machine, probed over TCP.
func runOnce(t *testing.T, k kernel, dir string, mode podspec.Mode) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	o := podspec.DefaultOptions()
	o.VS, o.Mode, o.RunOnce, o.LockDir = testVS, mode, true, dir
	o.Health.Scheme = "tcp"
	o.RS = []netip.AddrPort{netip.MustParseAddrPort(l.Addr().String())}
	return k.care(context.Background(), o, SystemClock{}, nil)
}

func readPinFile(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(PinFile(dir, testVS))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The rules phase programs the VIP with nftables on a kernel without IPVS;
// IPVS appears later (the module loaded): the daemon in mode auto stays on
// nftables, and an explicit --mode ipvs is refused until clean.
func TestPinKeepsTheFirstBackend(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fk := newFakeKernel(false)
	k := fk.kernel()
	if err := runOnce(t, k, dir, podspec.ModeAuto); err != nil {
		t.Fatal(err)
	}
	if got := fk.holder(testVS); got != "nftables" {
		t.Fatalf("first program without IPVS: held by %q, want nftables", got)
	}
	if got := readPinFile(t, dir); got != "nftables\n" {
		t.Errorf("pin file %s holds %q, want nftables", PinFile(dir, testVS), got)
	}

	fk.hasIPVS.Store(true)
	if err := runOnce(t, k, dir, podspec.ModeAuto); err != nil {
		t.Fatal(err)
	}
	if got := fk.holder(testVS); got != "nftables" {
		t.Fatalf("auto with both backends available and a nftables pin: held by %q, want nftables only", got)
	}

	err := runOnce(t, k, dir, podspec.ModeIPVS)
	var pe *PinnedError
	if !errors.As(err, &pe) || pe.Pinned != podspec.ModeNFTables {
		t.Fatalf("--mode ipvs over a nftables pin: %v, want a PinnedError", err)
	}
	for _, want := range []string{"held by the nftables backend", "sealflow lvscare clean --vs 10.103.97.2:6443", "--mode ipvs"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if got := fk.holder(testVS); got != "nftables" {
		t.Errorf("after the refused --mode ipvs: held by %q", got)
	}

	st, err := k.status(context.Background(), testVS, podspec.ModeAuto, dir)
	if err != nil || st.Backend != "nftables" || st.Pinned != podspec.ModeNFTables {
		t.Errorf("status: %+v, %v; want nftables, pinned", st, err)
	}
	if got := FormatStatus(st); !strings.Contains(got, "backend pinned: nftables ("+PinFile(dir, testVS)+")") {
		t.Errorf("status text does not show the pin:\n%s", got)
	}

	// clean --mode ipvs leaves the pinned backend's VS and its pin alone.
	if err := k.clean(context.Background(), testVS, podspec.ModeIPVS, dir, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("clean --mode ipvs: %v, want ErrNotFound", err)
	}
	if readPinFile(t, dir) == "" || fk.holder(testVS) != "nftables" {
		t.Error("clean --mode ipvs removed the nftables pin or rules")
	}
	// clean (auto) removes the rules and the pin; then ipvs may take it.
	if err := k.clean(context.Background(), testVS, podspec.ModeAuto, dir, nil); err != nil {
		t.Fatal(err)
	}
	if got := readPinFile(t, dir); got != "" || fk.holder(testVS) != "" {
		t.Fatalf("after clean: pin %q, held by %q; want neither", got, fk.holder(testVS))
	}
	if err := runOnce(t, k, dir, podspec.ModeIPVS); err != nil {
		t.Fatalf("--mode ipvs after clean: %v", err)
	}
	if err := runOnce(t, k, dir, podspec.ModeAuto); err != nil {
		t.Fatal(err)
	}
	if got, pin := fk.holder(testVS), readPinFile(t, dir); got != "ipvs" || pin != "ipvs\n" {
		t.Errorf("after --mode ipvs then auto: held by %q, pin %q; want ipvs", got, pin)
	}
	// A clean that finds only the pin removes it and succeeds.
	if err := fk.ipvs.Delete(context.Background(), testVS); err != nil {
		t.Fatal(err)
	}
	if err := k.clean(context.Background(), testVS, podspec.ModeAuto, dir, nil); err != nil || readPinFile(t, dir) != "" {
		t.Errorf("clean of a pin alone: %v, pin %q", err, readPinFile(t, dir))
	}
	if err := k.clean(context.Background(), testVS, podspec.ModeAuto, dir, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("clean of nothing: %v, want ErrNotFound", err)
	}
}

func TestPinFirstChoice(t *testing.T) {
	t.Parallel()
	// Both available, no pin, nothing programmed: IPVS, pinned.
	dir := t.TempDir()
	fk := newFakeKernel(true)
	if err := runOnce(t, fk.kernel(), dir, podspec.ModeAuto); err != nil {
		t.Fatal(err)
	}
	if got, pin := fk.holder(testVS), readPinFile(t, dir); got != "ipvs" || pin != "ipvs\n" {
		t.Errorf("first auto program with IPVS: held by %q, pin %q; want ipvs", got, pin)
	}

	// Rules from before pins existed, in nftables: auto keeps them there.
	dir = t.TempDir()
	fk = newFakeKernel(true)
	if err := fk.nft.Add(context.Background(), testVS, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if err := runOnce(t, fk.kernel(), dir, podspec.ModeAuto); err != nil {
		t.Fatal(err)
	}
	if got, pin := fk.holder(testVS), readPinFile(t, dir); got != "nftables" || pin != "nftables\n" {
		t.Errorf("auto over unpinned nftables rules: held by %q, pin %q; want nftables", got, pin)
	}

	// --mode ipvs on a kernel without IPVS fails and pins nothing (a later
	// auto run is free to use nftables).
	dir = t.TempDir()
	fk = newFakeKernel(false)
	if err := runOnce(t, fk.kernel(), dir, podspec.ModeIPVS); err == nil || !strings.Contains(err.Error(), "no IPVS") {
		t.Errorf("--mode ipvs without IPVS: %v", err)
	}
	if pin := readPinFile(t, dir); pin != "" {
		t.Errorf("a failed --mode ipvs left the pin %q", pin)
	}

	// Pinned to IPVS, and the kernel has lost it: a clear error.
	fk = newFakeKernel(false)
	dir = t.TempDir()
	if _, err := writePin(dir, testVS, podspec.ModeIPVS); err != nil {
		t.Fatal(err)
	}
	err := runOnce(t, fk.kernel(), dir, podspec.ModeAuto)
	if err == nil || !strings.Contains(err.Error(), "pinned to the ipvs backend") || fk.holder(testVS) != "" {
		t.Errorf("ipvs pin without IPVS: %v, held by %q; want an error and nothing programmed", err, fk.holder(testVS))
	}

	// The first writer's pin wins.
	dir = t.TempDir()
	if m, err := writePin(dir, testVS, podspec.ModeNFTables); err != nil || m != podspec.ModeNFTables {
		t.Fatal(m, err)
	}
	if m, err := writePin(dir, testVS, podspec.ModeIPVS); err != nil || m != podspec.ModeNFTables {
		t.Errorf("second pin: %q, %v; want the first (nftables)", m, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("files in the lock directory: %v, want the pin only", ents)
	}
}
