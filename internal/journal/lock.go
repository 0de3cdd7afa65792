package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrLocked is wrapped by Open's error when a live process holds the state
// directory's lock.
var ErrLocked = errors.New("state directory is locked")

// LockedError says who holds a state directory. It wraps ErrLocked.
type LockedError struct {
	Dir     string
	PID     int       // 0 when the lock file could not be read
	Started time.Time // zero when unknown
}

func (e *LockedError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("state directory %s is in use by another process; wait for it or use another --state", e.Dir)
	}
	return fmt.Sprintf("state directory %s is in use by pid %d (started %s); wait for it or use another --state",
		e.Dir, e.PID, e.Started.Format(time.RFC3339))
}

func (e *LockedError) Unwrap() error { return ErrLocked }

const lockFile = "lock"

// holder is the content of a lock file: "PID START\n".
type holder struct {
	pid     int
	started time.Time
}

func (h holder) String() string {
	return fmt.Sprintf("%d %s\n", h.pid, h.started.Format(time.RFC3339Nano))
}

func parseHolder(b []byte) (holder, bool) {
	pid, start, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
	if !ok {
		return holder{}, false
	}
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 0 {
		return holder{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, start)
	if err != nil {
		return holder{}, false
	}
	return holder{pid: n, started: t}, true
}

func readHolder(f *os.File) (holder, bool) {
	buf := make([]byte, 128)
	n, _ := f.ReadAt(buf, 0)
	return parseHolder(buf[:n])
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// acquireLock takes DIR/lock for this process, or returns a *LockedError.
func acquireLock(dir string, now time.Time, logf func(string)) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// The holder writes its pid right after taking the lock: give it
		// a moment when the file is not readable yet.
		h, ok := readHolder(f)
		for i := 0; !ok && i < 20; i++ {
			time.Sleep(10 * time.Millisecond)
			h, ok = readHolder(f)
		}
		return nil, &LockedError{Dir: dir, PID: h.pid, Started: h.started}
	}
	old := make([]byte, 128)
	n, _ := f.ReadAt(old, 0)
	if h, ok := parseHolder(old[:n]); ok {
		logf(fmt.Sprintf("taking over stale lock of pid %d (started %s) in %s",
			h.pid, h.started.Format(time.RFC3339), dir))
	} else if n > 0 {
		logf(fmt.Sprintf("taking over stale lock in %s (lock file unreadable)", dir))
	}
	text := holder{pid: os.Getpid(), started: now}.String()
	_, err = f.WriteAt([]byte(text), 0)
	if err == nil {
		err = f.Truncate(int64(len(text)))
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("write lock %s: %w", path, err)
	}
	return f, nil
}

// releaseLock empties the lock file (so the next Open sees a clean release,
// not a stale lock) and drops the flock. The file is kept: removing it would
// let two later Opens lock two different files.
func releaseLock(f *os.File) error {
	terr := f.Truncate(0)
	uerr := flock(f, unix.LOCK_UN)
	cerr := f.Close()
	if err := errors.Join(terr, uerr, cerr); err != nil {
		return fmt.Errorf("release lock %s: %w", f.Name(), err)
	}
	return nil
}
