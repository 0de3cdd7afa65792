package journal

import (
	"testing"
)

func TestReaderSeesWhetherARunHoldsTheLock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rd, err := ReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !rd.InUse() {
		t.Errorf("InUse = false while a State holds %s", dir)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if rd.InUse() {
		t.Errorf("InUse = true after the State was closed")
	}
	// A stale lock file left by a killed run: no flock on it.
	other, err := ReadOnly(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if other.InUse() {
		t.Errorf("InUse = true on a directory that never had a run")
	}
}

func TestReaderLogPathIsTheRunsLogPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := openT(t, dir, Options{})
	rd, err := ReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range [][2]string{{"fetch", "w1"}, {"a/b", "%x"}, {"..", "."}} {
		if got, want := rd.LogPath(task[0], task[1]), s.LogPath(task[0], task[1]); got != want {
			t.Errorf("Reader.LogPath(%q, %q) = %s, State.LogPath = %s", task[0], task[1], got, want)
		}
	}
}

func TestLockHeldReadsProcLocks(t *testing.T) {
	t.Parallel()
	text := []byte("1: POSIX  ADVISORY  WRITE 77 00:2a:99 0 EOF\n" +
		"2: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF\n" +
		"2: -> FLOCK  ADVISORY  WRITE 1300 fd:01:4321 0 EOF\n")
	dev := uint64(0xfd<<8 | 0x01) // old-style encoding of 253:1
	for _, c := range []struct {
		ino  uint64
		want bool
	}{{5678, true}, {4321, false}, {99, false}, {1, false}} {
		if got := lockHeld(text, dev, c.ino); got != c.want {
			t.Errorf("lockHeld(ino %d) = %v, want %v", c.ino, got, c.want)
		}
	}
}
