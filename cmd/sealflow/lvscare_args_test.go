package main

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/sealflow/sealflow/lvscare"
)

// A stray argument is exit 2 for every lvscare subcommand (before it, the
// flag parser stopped and --run-once was dropped: a daemon ran).
func TestLvscareStrayArguments(t *testing.T) {
	bin := sealflowBin(t)
	dir := t.TempDir()
	for _, args := range [][]string{
		{"lvscare", "care", "--vs", "10.103.97.2:6443", "--rs", "127.0.0.1:1", "stray", "--run-once"},
		{"lvscare", "clean", "--vs", "10.103.97.2:6443", "stray"},
		{"lvscare", "status", "--vs", "10.103.97.2:6443", "stray"},
	} {
		_, stderr, code := sf(t, bin, dir, "", args...)
		if code != 2 || !strings.Contains(stderr, `unexpected argument "stray"`) {
			t.Errorf("%v: exit %d, want 2 naming the argument\n%s", args, code, stderr)
		}
	}
}

// A second daemon for one virtual server is refused, exit 2, naming who
// holds it; it touches nothing.
func TestLvscareSecondDaemonRefused(t *testing.T) {
	bin := sealflowBin(t)
	dir := t.TempDir()
	vs := netip.MustParseAddrPort("10.103.97.9:6443")
	release, err := lvscare.LockVS(dir, vs)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	_, stderr, code := sf(t, bin, dir, "", "lvscare", "care", "--vs", vs.String(), "--rs", "127.0.0.1:1", "--lock-dir", dir)
	if want := fmt.Sprintf("already kept by pid %d", os.Getpid()); code != 2 || !strings.Contains(stderr, want) {
		t.Errorf("second daemon: exit %d, want 2 and %q\n%s", code, want, stderr)
	}
}

// An explicit --mode that contradicts the backend pin is exit 2, saying
// which backend holds the virtual server and how to switch; it programs
// nothing (the pin is read before any backend is opened).
func TestLvscarePinnedModeRefused(t *testing.T) {
	bin := sealflowBin(t)
	dir := t.TempDir()
	vs := netip.MustParseAddrPort("10.103.97.9:6443")
	if err := os.WriteFile(lvscare.PinFile(dir, vs), []byte("nftables\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := sf(t, bin, dir, "", "lvscare", "care", "--vs", vs.String(), "--rs", "127.0.0.1:1",
		"--mode", "ipvs", "--run-once", "--lock-dir", dir)
	for _, want := range []string{"held by the nftables backend", "sealflow lvscare clean --vs 10.103.97.9:6443"} {
		if code != 2 || !strings.Contains(stderr, want) {
			t.Errorf("--mode ipvs over a nftables pin: exit %d, want 2 and %q\n%s", code, want, stderr)
		}
	}
}
