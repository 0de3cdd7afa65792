package steps

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sealflow/sealflow/internal/transport"
)

// copyKind uploads a local file to the hosts. Its sums are cached for the
// registry's lifetime (one run), keyed by file, size and mtime, so that a
// file sent to many hosts is hashed once.
func copyKind() *Kind {
	sums := &FileSums{}
	return &Kind{
		Name:       "copy",
		Doc:        "upload a local file to the host (skipped when the host already has it)",
		LocalFiles: []string{"src"},
		Sums:       sums,
		Params: []Param{
			{Name: "src", Type: String, Required: true, Doc: "the local file"},
			{Name: "dest", Type: String, Required: true, Doc: "the absolute path on the host"},
			{Name: "mode", Type: String, Doc: `permissions in octal, like "0644" (default: the source's)`},
		},
		Rerunnable: true,
		New:        func(p Params) (Step, error) { return newCopy(p, sums) },
	}
}

type copyStep struct {
	src, dest string
	mode      fs.FileMode
	modeSet   bool
	sums      *FileSums
}

func newCopy(p Params, sums *FileSums) (Step, error) {
	s := &copyStep{sums: sums}
	s.src, _ = p["src"].(string)
	s.dest, _ = p["dest"].(string)
	if s.src == "" {
		return nil, fmt.Errorf("src: the local file to copy is empty")
	}
	if !path.IsAbs(s.dest) || strings.HasSuffix(s.dest, "/") {
		return nil, fmt.Errorf("dest: %q is not an absolute file path on the host", s.dest)
	}
	if m, _ := p["mode"].(string); m != "" {
		v, err := strconv.ParseUint(m, 8, 32)
		if err != nil || v > 0o7777 {
			return nil, fmt.Errorf("mode: %q is not an octal file mode like \"0644\"", m)
		}
		s.mode, s.modeSet = fs.FileMode(v), true
	}
	return s, nil
}

// Run uploads the file (nothing is sent when the host has it already).
func (s *copyStep) Run(ctx context.Context, t *Target) (Outputs, error) {
	f, st, err := openRegular("src", s.src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sum, err := s.sums.sum(f, st)
	if err != nil {
		return nil, fmt.Errorf("sha256 of %s: %w", s.src, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read %s: %w", s.src, err)
	}
	mode := s.fileMode(st)
	dest, err := fileDest(ctx, t, s.dest, filepath.Base(s.src))
	if err != nil {
		return nil, err
	}
	if t.Log != nil {
		fmt.Fprintf(t.Log, "copy %s (%d bytes, sha256 %s) to %s mode %04o\n", s.src, st.Size(), sum, dest, mode)
	}
	if err := uploadFile(ctx, t, f, st.Size(), dest, mode, sum); err != nil {
		return nil, err
	}
	return Outputs{"sha256": sum}, nil
}

// Done reports the task done when dest has the source's content and mode.
func (s *copyStep) Done(ctx context.Context, t *Target) (bool, Outputs, error) {
	f, st, err := openRegular("src", s.src)
	if err != nil {
		return false, nil, err
	}
	defer f.Close()
	sum, err := s.sums.sum(f, st)
	if err != nil {
		return false, nil, fmt.Errorf("sha256 of %s: %w", s.src, err)
	}
	dest, err := fileDest(ctx, t, s.dest, filepath.Base(s.src))
	if err != nil {
		return false, nil, err
	}
	var out bytes.Buffer
	res, err := t.Conn.Exec(ctx, transport.Command{
		Script: `[ -f "$SEALFLOW_DEST" ] || exit 0
s=$(sha256sum <"$SEALFLOW_DEST")
m=$(stat -c %a -- "$SEALFLOW_DEST")
echo "${s%% *} $m"`,
		Env:    map[string]string{"SEALFLOW_DEST": dest},
		Stdout: &out,
		Become: t.Become,
	})
	if err != nil {
		return false, nil, fmt.Errorf("check %s: %w", dest, err)
	}
	if res.ExitCode != 0 {
		return false, nil, fmt.Errorf("check %s: %w", dest, &transport.ExitError{Code: res.ExitCode})
	}
	have, modeText, _ := strings.Cut(strings.TrimSpace(out.String()), " ")
	m, err := strconv.ParseUint(modeText, 8, 32)
	if have != sum || err != nil || fs.FileMode(m) != s.fileMode(st) {
		return false, nil, nil
	}
	return true, Outputs{"sha256": sum}, nil
}

func (s *copyStep) Describe(t *Target) []string {
	mode := "the source's mode"
	if s.modeSet {
		mode = fmt.Sprintf("mode %04o", s.mode)
	}
	return []string{fmt.Sprintf("copy %s to %s (%s)", s.src, s.dest, mode)}
}

func (s *copyStep) fileMode(st fs.FileInfo) fs.FileMode {
	if s.modeSet {
		return s.mode
	}
	return st.Mode().Perm()
}

// fileKey is a local file's identity: a file whose key is unchanged
// has the content it had.
type fileKey struct {
	name  string
	size  int64
	mtime time.Time
	ino   uint64
}

// fileCache remembers what was computed from the content of files
// already read; tasks asking for a file being read wait for that one
// reading. A failed computation is not remembered.
type fileCache[T any] struct {
	mu sync.Mutex
	m  map[fileKey]*fileEntry[T]
}

type fileEntry[T any] struct {
	once sync.Once
	v    T
	err  error
}

func (c *fileCache[T]) get(f *os.File, st fs.FileInfo, compute func() (T, error)) (T, error) {
	key := fileKey{name: f.Name(), size: st.Size(), mtime: st.ModTime()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		key.ino = uint64(sys.Ino)
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[fileKey]*fileEntry[T]{}
	}
	e := c.m[key]
	if e == nil {
		e = &fileEntry[T]{}
		c.m[key] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.v, e.err = compute() })
	if e.err != nil {
		c.mu.Lock()
		delete(c.m, key)
		c.mu.Unlock()
	}
	return e.v, e.err
}

// FileSums remembers the sha256 of files of this machine already read,
// each version of a file (name, size, mtime, inode) hashed once: copy's
// and distribute's sums, and the engine's fingerprints of the tasks that
// read them.
type FileSums struct{ fileCache[string] }

// Sum returns the hex sha256 of the regular file at path.
func (c *FileSums) Sum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	return c.sum(f, st)
}

func (c *FileSums) sum(f *os.File, st fs.FileInfo) (string, error) {
	return c.get(f, st, func() (string, error) {
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return "", err
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	})
}
