package lvscare

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sealflow/sealflow/lvscare/podspec"
)

// DefaultLockDir holds the lock of each virtual server's daemon and its
// backend pin (PinFile).
const DefaultLockDir = podspec.DefaultLockDir

// LockedError is a virtual server another daemon already keeps.
type LockedError struct {
	VS   netip.AddrPort
	File string
	PID  int // 0 when unknown
}

func (e *LockedError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = "pid " + strconv.Itoa(e.PID)
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", e.PID)); err == nil && len(b) > 0 {
			who += " (" + strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " ")) + ")"
		}
	}
	return fmt.Sprintf("virtual server %s is already kept by %s (lock %s): two daemons for one virtual server fight; stop that one first", e.VS, who, e.File)
}

// LockVS takes the lock of vs's daemon: an flock on dir/lvscare-VIP-PORT.lock
// that holds the owner's pid. The kernel drops it when the process exits,
// however it exits; release drops it earlier.
func LockVS(dir string, vs netip.AddrPort) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock virtual server %s: %w", vs, err)
	}
	name := filepath.Join(dir, fmt.Sprintf("lvscare-%s-%d.lock", vs.Addr(), vs.Port()))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock virtual server %s: %w", vs, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(name)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			return nil, &LockedError{VS: vs, File: name, PID: pid}
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}
