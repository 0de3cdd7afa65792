package lvscare

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
)

func TestLockVS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	vs := netip.MustParseAddrPort("10.103.97.2:6443")
	release, err := LockVS(dir, vs)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockVS(dir, vs)
	var le *LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() || !strings.Contains(err.Error(), "already kept by pid") {
		t.Fatalf("second lock: %v, want who holds it", err)
	}
	// Another virtual server is another lock.
	other, err := LockVS(dir, netip.MustParseAddrPort("10.103.97.2:443"))
	if err != nil {
		t.Fatal(err)
	}
	other()
	release()
	again, err := LockVS(dir, vs)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again()
}
