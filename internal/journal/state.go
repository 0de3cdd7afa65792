package journal

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Options configure Open.
type Options struct {
	// Now is the clock (default time.Now). Append stamps records that
	// have no Time with it.
	Now func() time.Time
	// Log receives informational messages (a stale lock taken over, a torn
	// last record ignored). May be nil.
	Log func(msg string)
	// Key, when set, is the 32-byte state key to use instead of the key
	// file (the CLI decodes it from SEALFLOW_STATE_KEY). No key file is
	// created then.
	Key []byte

	// sync makes a written batch durable (default (*os.File).Sync); tests
	// count calls through it.
	sync func(*os.File) error
}

const journalFile = "journal"

// State is an open, locked state directory. Its methods are safe for
// concurrent use.
type State struct {
	dir     string
	path    string // of the journal
	now     func() time.Time
	logf    func(string)
	tab     *crc32.Table
	seal    *sealer
	lock    *os.File
	f       *os.File
	syncFn  func(*os.File) error
	corrupt error // a *CorruptError found by Open: nothing is appended then
	// keyErr is a *KeyMissingError: the key file is gone while the
	// journal holds secrets sealed with it. Replay and appends of
	// secrets fail with it; Discard makes a new key.
	keyErr error

	closeMu    sync.RWMutex // held for reading while queueing, for writing by Close
	closed     bool
	reqs       chan *appendReq
	writerDone chan struct{}

	truncateTo int64 // writer goroutine only: cut a torn tail here first, or -1

	mu     sync.Mutex
	synced int64 // journal bytes written and fsynced
	werr   error // sticky: a failed write or fsync
}

// Open opens the state directory dir, creating it (0700) when needed: it
// takes the lock, opens or creates the journal and loads or creates the key.
// When another live process (or another State of this process) holds the
// lock, the error wraps ErrLocked.
func Open(dir string, opts Options) (*State, error) {
	if dir == "" {
		return nil, errors.New("open state directory: empty path")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = func(string) {}
	}
	if opts.sync == nil {
		opts.sync = (*os.File).Sync
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	lock, err := acquireLock(dir, opts.Now(), opts.Log)
	if err != nil {
		return nil, err
	}
	s, err := open(dir, opts, lock)
	if err != nil {
		_ = releaseLock(lock)
		return nil, err
	}
	return s, nil
}

func open(dir string, opts Options, lock *os.File) (*State, error) {
	key, _, err := loadKey(dir, opts.Key, false)
	keyMissing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !keyMissing {
		return nil, err
	}
	var seal *sealer
	if !keyMissing {
		if seal, err = newSealer(key); err != nil {
			return nil, err
		}
	}
	keyCreated := false
	path := filepath.Join(dir, journalFile)
	_, statErr := os.Lstat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	s := &State{
		dir:        dir,
		path:       path,
		now:        opts.Now,
		logf:       opts.Log,
		tab:        castagnoli(),
		seal:       seal,
		lock:       lock,
		f:          f,
		syncFn:     opts.sync,
		reqs:       make(chan *appendReq, 1024),
		writerDone: make(chan struct{}),
		truncateTo: -1,
	}
	res, err := scan(io.NewSectionReader(f, 0, 1<<62), path, s.tab, nil)
	var ce *CorruptError
	switch {
	case errors.As(err, &ce):
		s.corrupt = err
		opts.Log(err.Error())
	case err != nil:
		f.Close()
		return nil, err
	}
	s.synced = res.good
	if keyMissing {
		// A new key is harmless unless the journal holds secrets sealed
		// with the old one: then say that key is gone.
		sealed := false
		if s.corrupt == nil {
			recs, _ := replay(io.NewSectionReader(f, 0, res.good), path, s.tab, nil, 0)
			for _, r := range recs {
				sealed = sealed || len(r.Secrets) > 0
			}
		}
		if sealed {
			s.keyErr = &KeyMissingError{Path: filepath.Join(dir, keyFile), Dir: dir}
		} else {
			key, err := createKeyFile(dir)
			if err == nil {
				s.seal, err = newSealer(key)
			}
			if err != nil {
				f.Close()
				return nil, err
			}
			keyCreated = true
		}
	}
	if res.tornOff >= 0 && s.corrupt == nil {
		s.truncateTo = res.good
		opts.Log(fmt.Sprintf("journal %s: ignoring the last record at byte offset %d (%d bytes, %s), left by an interrupted run; "+
			"it is removed before the next append", path, res.tornOff, res.tornSize, res.tornWhy))
	}
	if keyCreated || statErr != nil {
		if err := syncDir(dir); err != nil {
			f.Close()
			return nil, err
		}
	}
	go s.writeLoop()
	return s, nil
}

// Dir returns the state directory.
func (s *State) Dir() string { return s.dir }

// Replay returns every record of the journal in order, secret outputs
// decrypted. A torn or corrupt last record left by a crash is not returned;
// a bad record anywhere else is a *CorruptError naming its byte offset.
func (s *State) Replay() ([]Record, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.corrupt != nil {
		return nil, s.corrupt
	}
	if s.keyErr != nil {
		return nil, s.keyErr
	}
	if s.closed {
		return nil, fmt.Errorf("replay journal %s: state is closed", s.path)
	}
	s.mu.Lock()
	n := s.synced
	s.mu.Unlock()
	return replay(io.NewSectionReader(s.f, 0, n), s.path, s.tab, s.seal, n)
}

// Close waits for queued appends, closes the journal and releases the lock.
// Closing twice is a no-op.
func (s *State) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.closeMu.Unlock()
	<-s.writerDone
	var errs []error
	s.mu.Lock()
	if s.werr != nil {
		errs = append(errs, s.werr)
	}
	s.mu.Unlock()
	if err := s.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close journal %s: %w", s.path, err))
	}
	if err := releaseLock(s.lock); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Discard forgets the earlier run of the state directory while holding its
// lock: it empties the journal and removes the run files (PlanFile,
// InventoryFile, VarsFile, MetaFile) and the task logs. The key stays: it
// may be given by SEALFLOW_STATE_KEY for later runs too. Records queued
// before Discard are written first and discarded with the rest; s stays
// open, on an empty journal.
func (s *State) Discard() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return fmt.Errorf("discard the run in %s: state is closed", s.dir)
	}
	// Nothing can be queued while closeMu is held: once the writer has
	// answered this empty request it has written everything before it and
	// waits.
	idle := &appendReq{done: make(chan error, 1)}
	s.reqs <- idle
	<-idle.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.f.Truncate(0); err != nil {
		return fmt.Errorf("discard the run in %s: empty the journal: %w", s.dir, err)
	}
	if err := s.syncFn(s.f); err != nil {
		return fmt.Errorf("discard the run in %s: empty the journal: fsync: %w", s.dir, err)
	}
	// The journal is empty and its end known again: a torn tail, a corrupt
	// record or a failed write of the earlier run are gone with it.
	s.synced, s.truncateTo, s.corrupt, s.werr = 0, -1, nil, nil
	if s.keyErr != nil {
		// The secrets the lost key sealed are gone with the journal.
		key, err := createKeyFile(s.dir)
		if err != nil {
			return fmt.Errorf("discard the run in %s: %w", s.dir, err)
		}
		if s.seal, err = newSealer(key); err != nil {
			return err
		}
		s.keyErr = nil
	}
	for _, name := range []string{PlanFile, InventoryFile, VarsFile, SecretVarsFile, MetaFile, logsDir} {
		if err := os.RemoveAll(filepath.Join(s.dir, name)); err != nil {
			return fmt.Errorf("discard the run in %s: %w", s.dir, err)
		}
	}
	return syncDir(s.dir)
}

// KeyMissingError is a state key file that is gone while the journal
// holds secret outputs sealed with it.
type KeyMissingError struct {
	Path string // the key file
	Dir  string // the state directory
}

func (e *KeyMissingError) Error() string {
	return fmt.Sprintf("the state key %s is missing: it encrypts the secret outputs (tokens, certificate keys, passwords) "+
		"that the journal of %s holds; a new key cannot read them. Put the key file back (from a backup or wherever it was copied), "+
		"or give the key in SEALFLOW_STATE_KEY; or start over with `sealflow run --fresh` (discards the earlier run)", e.Path, e.Dir)
}

// Lost reports an earlier run whose journal is gone: run files (run.json)
// are saved but the journal holds no record (emptied or deleted). Resuming
// on it would run every task again as if none had run.
func (s *State) Lost() error {
	s.mu.Lock()
	n := s.synced
	s.mu.Unlock()
	if n > 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(s.dir, MetaFile)); err != nil {
		return nil
	}
	return fmt.Errorf("the journal of %s is empty or missing, but the state directory holds an earlier run (%s): "+
		"sealflow cannot tell which tasks already ran, and will not run them all again. "+
		"Restore the journal, or start over with `sealflow run --fresh --state %s PLAN` (discards the earlier run)",
		s.dir, MetaFile, s.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync state directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync state directory %s: %w", dir, err)
	}
	return nil
}
