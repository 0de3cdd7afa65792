package journal

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
)

// Reader reads a state directory without locking or writing anything, for
// `status` and `plan` while a run may be going on.
type Reader struct {
	dir  string
	tab  *crc32.Table
	seal *sealer // nil when no key is available
}

// ReadOnly opens the state directory dir for reading. Secret outputs are
// decrypted with the directory's key file. When there is none (the run was
// given its key in Options.Key), Replay returns secret outputs by name with
// empty values, enough for `status`; use ReadOnlyWith to decrypt them.
func ReadOnly(dir string) (*Reader, error) { return ReadOnlyWith(dir, Options{}) }

// ReadOnlyWith is ReadOnly with options: only Key is used (the key a run
// was given instead of a key file).
func ReadOnlyWith(dir string, opts Options) (*Reader, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("read state directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("read state directory: %s is not a directory", dir)
	}
	r := &Reader{dir: dir, tab: castagnoli()}
	key, _, err := loadKey(dir, opts.Key, false)
	switch {
	case err == nil:
		if r.seal, err = newSealer(key); err != nil {
			return nil, err
		}
	case errors.Is(err, fs.ErrNotExist):
		// No key: secret values are left empty.
	default:
		return nil, err
	}
	return r, nil
}

// Dir returns the state directory.
func (r *Reader) Dir() string { return r.dir }

// HasKey reports whether Replay can decrypt secret outputs.
func (r *Reader) HasKey() bool { return r.seal != nil }

// Replay returns the journal's records as State.Replay does. A directory
// without a journal has no records.
func (r *Reader) Replay() ([]Record, error) {
	path := filepath.Join(r.dir, journalFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replay journal: %w", err)
	}
	defer f.Close()
	var size int64
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	return replay(f, path, r.tab, r.seal, size)
}

// ReadRunFile returns a file saved by State.SaveRun.
func (r *Reader) ReadRunFile(name string) ([]byte, error) { return readRunFile(r.dir, name) }
