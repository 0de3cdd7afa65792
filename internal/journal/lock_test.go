package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSecondOpenInSameProcessIsLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	started := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	s, _ := openT(t, dir, Options{Now: func() time.Time { return started }})

	_, err := Open(dir, Options{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want an error wrapping ErrLocked", err)
	}
	want := fmt.Sprintf("state directory %s is in use by pid %d (started 2025-06-01T12:00:00Z); wait for it or use another --state",
		dir, os.Getpid())
	if err.Error() != want {
		t.Errorf("second Open error\n got %q\nwant %q", err, want)
	}
	var le *LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() || !le.Started.Equal(started) {
		t.Errorf("LockedError = %+v, want pid %d started %v", le, os.Getpid(), started)
	}

	// The refused Open changed nothing: the first State still works.
	mustAppend(t, s, rec(Started, "a", "h", 1))
	mustClose(t, s)

	// Once closed, the directory opens again without any stale-lock message.
	s2, logs := openT(t, dir, Options{})
	if l := logs.all(); len(l) != 0 {
		t.Errorf("Open after a clean Close logged %q, want nothing", l)
	}
	if got := mustReplay(t, s2); len(got) != 1 {
		t.Errorf("Replay = %d records, want 1", len(got))
	}
}

func TestStaleLockTakenOver(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A lock file left by a run that died: it names a pid, but nobody holds
	// the flock.
	stale := "4194000 2025-01-02T03:04:05Z\n"
	if err := os.WriteFile(filepath.Join(dir, "lock"), []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	_, logs := openT(t, dir, Options{})
	if !logs.find("taking over stale lock of pid 4194000 (started 2025-01-02T03:04:05Z)") {
		t.Errorf("Open logged %q, want the stale lock of pid 4194000 reported", logs.all())
	}
	b, err := os.ReadFile(filepath.Join(dir, "lock"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), fmt.Sprintf("%d ", os.Getpid())) {
		t.Errorf("lock file = %q, want it to name this process (pid %d)", b, os.Getpid())
	}
}

func TestOpenFailureReleasesLock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := Open(dir, Options{Key: []byte("short")}); err == nil || !strings.Contains(err.Error(), "must be 32") {
		t.Fatalf("Open with a 5-byte key = %v, want a key length error", err)
	}
	// The failed Open left the directory free.
	openT(t, dir, Options{})
}

func TestOpenCreatesPrivateDirectory(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a", "b", ".sealflow")
	openT(t, dir, Options{})
	for _, name := range []string{"", "journal", "lock", "key"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %#o, want no access for group and others", filepath.Join(dir, name), perm)
		}
	}
}
