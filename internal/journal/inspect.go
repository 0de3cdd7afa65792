package journal

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// LogPath returns where the output of step on host is kept, as
// State.LogPath does.
func (r *Reader) LogPath(step, host string) string {
	return filepath.Join(r.dir, logsDir, fileName(step), fileName(host)+".log")
}

// InUse reports whether a live process holds the state directory's lock:
// a run is going on, so a task started without an end is running, not
// interrupted. It only reads /proc/locks; probing with flock could make a
// run that starts at that moment fail.
func (r *Reader) InUse() bool {
	fi, err := os.Stat(filepath.Join(r.dir, lockFile))
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return false
	}
	return lockHeld(b, uint64(st.Dev), st.Ino)
}

// lockHeld reports whether the /proc/locks text holds a granted flock on
// the file (dev, ino). Lines look like
// "1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF"; a waiter's has "->"
// after the number.
func lockHeld(text []byte, dev, ino uint64) bool {
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[1] == "->" || f[1] != "FLOCK" {
			continue
		}
		parts := strings.Split(f[5], ":")
		if len(parts) != 3 {
			continue
		}
		maj, err1 := strconv.ParseUint(parts[0], 16, 32)
		min, err2 := strconv.ParseUint(parts[1], 16, 32)
		n, err3 := strconv.ParseUint(parts[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		if uint32(maj) == unix.Major(dev) && uint32(min) == unix.Minor(dev) && n == ino {
			return true
		}
	}
	return false
}
