package sshconn

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/pkg/sftp"

	"github.com/sealflow/sealflow/internal/transport"
)

// Upload writes src to dst over SFTP, streamed. The data goes to a
// partial file, is checked against its sha256 on the host, gets mode and
// is renamed over dst. When dst already has sum nothing is sent. An
// upload interrupted earlier resumes from its partial file when src can
// seek (io.Seeker or io.ReaderAt) and the partial file is a prefix of it.
//
// With Config.Become the data is written as the login user to a private
// directory in its home, then copied into place by root through sudo.
func (c *Conn) Upload(ctx context.Context, src io.Reader, dst string, mode fs.FileMode, sum string) error {
	if err := c.upload(ctx, src, dst, mode, sum); err != nil {
		return fmt.Errorf("upload to %s:%s: %w", c.cfg.HostName, dst, err)
	}
	return nil
}

func (c *Conn) upload(ctx context.Context, src io.Reader, dst string, mode fs.FileMode, sum string) error {
	if dst == "" || strings.HasSuffix(dst, "/") || strings.IndexByte(dst, 0) >= 0 {
		return fmt.Errorf("destination %q is not a file path", dst)
	}
	sum = strings.ToLower(sum)
	if _, ok := src.(io.Seeker); !ok {
		if ra, ok := src.(io.ReaderAt); ok {
			src = io.NewSectionReader(ra, 0, math.MaxInt64)
		}
	}
	become := c.cfg.Become && c.cfg.User != "root"
	have, err := c.remoteSum(ctx, dst, become)
	if err != nil {
		return err
	}
	if sum != "" && have == sum {
		return nil
	}
	sc, err := within(ctx, c.sftpClient, nil)
	if err != nil {
		return err
	}
	final := path.Join(path.Dir(dst), "."+path.Base(dst)+".sealflow-partial")
	partial := final
	if become {
		home, err := within(ctx, sc.Getwd, nil)
		if err != nil {
			return fmt.Errorf("find the home directory of %s: %w", c.cfg.User, err)
		}
		dir := path.Join(home, ".sealflow-partial")
		if err := do(ctx, func() error { return sc.MkdirAll(dir) }); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
		if err := do(ctx, func() error { return sc.Chmod(dir, 0o700) }); err != nil {
			return fmt.Errorf("chmod %s: %w", dir, err)
		}
		h := sha256.Sum256([]byte(dst))
		partial = path.Join(dir, hex.EncodeToString(h[:16]))
	} else if err := do(ctx, func() error { return sc.MkdirAll(path.Dir(dst)) }); err != nil {
		return fmt.Errorf("create %s: %w", path.Dir(dst), err)
	}

	release, err := c.uploadSlot(ctx, src)
	if err != nil {
		return err
	}
	defer release()
	h := sha256.New()
	offset, err := c.resumePoint(ctx, src, partial, h)
	if err != nil {
		return err
	}
	if err := c.createPrivate(ctx, partial, mode); err != nil {
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE
	if offset == 0 {
		flags |= os.O_TRUNC
	}
	f, err := within(ctx, func() (*sftp.File, error) { return sc.OpenFile(partial, flags) }, func(f *sftp.File) { f.Close() })
	if err != nil {
		return fmt.Errorf("open %s: %w", partial, err)
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	if err := do(ctx, func() error { _, err := f.Seek(offset, io.SeekStart); return err }); err != nil {
		stop()
		f.Close()
		return fmt.Errorf("seek %s: %w", partial, err)
	}
	// A host that stops answering mid-transfer blocks the writes (no
	// window left): within returns at the deadline all the same.
	_, err = within(ctx, func() (int64, error) {
		return f.ReadFromWithConcurrency(&ctxReader{ctx: ctx, r: io.TeeReader(src, h)}, 0)
	}, nil)
	stop()
	cerr := do(ctx, f.Close)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", partial, err)
	}
	if cerr != nil {
		return fmt.Errorf("close %s: %w", partial, cerr)
	}
	local := hex.EncodeToString(h.Sum(nil))
	if sum != "" && local != sum {
		_ = do(ctx, func() error { return sc.Remove(partial) })
		return fmt.Errorf("the source's sha256 is %s, not the expected %s (did it change while being sent?)", local, sum)
	}
	return c.install(ctx, partial, final, dst, mode, local, become)
}

// createPrivate creates file (when missing) with no more permissions
// than mode and gives it mode, before any data is in it: SFTP creates
// files 0644, and a partial file of a 0600 secret must never be that.
func (c *Conn) createPrivate(ctx context.Context, file string, mode fs.FileMode) error {
	var stderr bytes.Buffer
	res, err := c.Exec(ctx, transport.Command{
		Script: `umask "$SEALFLOW_UMASK" && : >>"$SEALFLOW_FILE" && chmod -- "$SEALFLOW_MODE" "$SEALFLOW_FILE"`,
		Env: map[string]string{"SEALFLOW_FILE": file, "SEALFLOW_UMASK": umaskFor(mode),
			"SEALFLOW_MODE": fmt.Sprintf("%04o", mode.Perm())},
		Stderr: &stderr,
	})
	if err != nil {
		return fmt.Errorf("create %s: %w", file, err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("create %s: exit status %d: %s", file, res.ExitCode, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// umaskFor is the umask under which new files get at most mode.
func umaskFor(mode fs.FileMode) string { return fmt.Sprintf("%04o", 0o777&^mode.Perm()) }

// remoteSum returns the sha256 of dst on the host, or "" when it is not
// a readable regular file. A directory is an error: the file would land
// inside it under another name.
func (c *Conn) remoteSum(ctx context.Context, file string, become bool) (string, error) {
	var out bytes.Buffer
	res, err := c.Exec(ctx, transport.Command{
		Script: `[ -d "$SEALFLOW_FILE" ] && exit 4
[ -f "$SEALFLOW_FILE" ] || exit 0
sha256sum <"$SEALFLOW_FILE"`,
		Env:    map[string]string{"SEALFLOW_FILE": file},
		Stdout: &out,
		Become: become,
	})
	if err != nil {
		return "", fmt.Errorf("sha256 of %s: %w", file, err)
	}
	if res.ExitCode == 4 {
		return "", fmt.Errorf("%s is a directory; give the path of the file to write", file)
	}
	if res.ExitCode != 0 {
		return "", nil
	}
	s, _, _ := strings.Cut(out.String(), " ")
	return s, nil
}

// uploadSlot waits for a slot of Config.Uploads, unless src is known
// to be small.
func (c *Conn) uploadSlot(ctx context.Context, src io.Reader) (release func(), err error) {
	slots := c.cfg.Uploads
	if slots == nil {
		return func() {}, nil
	}
	if n, ok := sourceSize(src); ok && n < SmallUpload {
		return func() {}, nil
	}
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a free upload slot: %w", ctx.Err())
	case <-c.gone:
		return nil, c.dropped(false)
	}
}

// sourceSize returns how many bytes src has left, when it can tell.
func sourceSize(src io.Reader) (int64, bool) {
	switch r := src.(type) {
	case interface{ Len() int }:
		return int64(r.Len()), true
	case interface{ Stat() (fs.FileInfo, error) }:
		st, err := r.Stat()
		if err != nil || !st.Mode().IsRegular() {
			return 0, false
		}
		if s, ok := src.(io.Seeker); ok {
			if at, err := s.Seek(0, io.SeekCurrent); err == nil {
				return st.Size() - at, true
			}
		}
	}
	return 0, false
}

// resumeBlock is the unit in which a partial file is compared with the
// source on resume.
const resumeBlock = 4 << 20

// resumePoint returns where to continue writing partial: the length of
// its longest run of leading blocks that hold the same bytes as src (src
// is then positioned after them and h has hashed them), else 0 with src
// and h at the start. Concurrent writes may leave a partial file with
// holes (later blocks written, an earlier one not): every block is
// compared by its sha256, so a hole is never taken for data, and the
// partial file is cut back to the blocks that match.
func (c *Conn) resumePoint(ctx context.Context, src io.Reader, partial string, h hash.Hash) (int64, error) {
	rs, ok := src.(io.ReadSeeker)
	if !ok {
		return 0, nil
	}
	sc, err := within(ctx, c.sftpClient, nil)
	if err != nil {
		return 0, err
	}
	st, err := within(ctx, func() (os.FileInfo, error) { return sc.Stat(partial) }, nil)
	if err != nil || !st.Mode().IsRegular() || st.Size() == 0 {
		return 0, nil
	}
	start, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, nil
	}
	n := st.Size()
	var out bytes.Buffer
	res, err := c.Exec(ctx, transport.Command{
		Script: `f=$SEALFLOW_FILE b=$SEALFLOW_BLOCK i=0
while [ $((i * b)) -lt "$SEALFLOW_SIZE" ]; do
	dd if="$f" bs="$b" skip="$i" count=1 iflag=fullblock 2>/dev/null | sha256sum
	i=$((i + 1))
done`,
		Env: map[string]string{
			"SEALFLOW_FILE":  partial,
			"SEALFLOW_SIZE":  strconv.FormatInt(n, 10),
			"SEALFLOW_BLOCK": strconv.Itoa(resumeBlock),
		},
		Stdout: &out,
	})
	if err != nil {
		return 0, fmt.Errorf("sha256 of the blocks of %s: %w", partial, err)
	}
	if res.ExitCode != 0 {
		return 0, nil
	}
	remote := strings.Fields(out.String())
	buf := make([]byte, resumeBlock)
	var valid int64
	for i := 0; valid < n; i++ {
		want := min(int64(resumeBlock), n-valid)
		k, err := io.ReadFull(&ctxReader{ctx: ctx, r: rs}, buf[:want])
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		sum := sha256.Sum256(buf[:k])
		// sha256sum prints "SUM  -": every other field.
		if err != nil || 2*i >= len(remote) || remote[2*i] != hex.EncodeToString(sum[:]) {
			break
		}
		h.Write(buf[:k])
		valid += int64(k)
	}
	if valid < n && valid > 0 {
		if err := sc.Truncate(partial, valid); err != nil {
			valid = 0
		}
	}
	if valid == 0 {
		h.Reset()
	}
	if _, err := rs.Seek(start+valid, io.SeekStart); err != nil {
		return 0, fmt.Errorf("position the source: %w", err)
	}
	return valid, nil
}

// install checks the partial file's sha256 on the host, sets its mode
// and renames it over dst (for become: copies it as root next to dst
// first).
func (c *Conn) install(ctx context.Context, partial, final, dst string, mode fs.FileMode, sum string, become bool) error {
	var stderr bytes.Buffer
	res, err := c.Exec(ctx, transport.Command{
		Script: installScript,
		Env: map[string]string{
			"SEALFLOW_PARTIAL": partial,
			"SEALFLOW_TEMP":    final,
			"SEALFLOW_DST":     dst,
			"SEALFLOW_DIR":     path.Dir(dst),
			"SEALFLOW_SUM":     sum,
			"SEALFLOW_MODE":    fmt.Sprintf("%04o", mode.Perm()),
			"SEALFLOW_UMASK":   umaskFor(mode),
		},
		Stderr: &stderr,
		Become: become,
	})
	if err != nil {
		return fmt.Errorf("install %s: %w", dst, err)
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("install %s: exit status %d: %s", dst, res.ExitCode, strings.TrimSpace(stderr.String()))
	}
	return nil
}

const installScript = `p=$SEALFLOW_PARTIAL
t=$SEALFLOW_TEMP
umask "$SEALFLOW_UMASK"
if [ -d "$SEALFLOW_DST" ]; then
	rm -f -- "$p" "$t"
	echo "$SEALFLOW_DST is a directory; give the path of the file to write" >&2
	exit 4
fi
if [ "$p" != "$t" ]; then
	mkdir -p -- "$SEALFLOW_DIR"
	cat -- "$p" >"$t"
	rm -f -- "$p"
fi
s=$(sha256sum <"$t")
s=${s%% *}
if [ "$s" != "$SEALFLOW_SUM" ]; then
	rm -f -- "$t"
	echo "sha256 of the uploaded file is $s, want $SEALFLOW_SUM; the partial file was removed" >&2
	exit 3
fi
chmod -- "$SEALFLOW_MODE" "$t"
mv -f -- "$t" "$SEALFLOW_DST"
`

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// within runs f but returns when ctx ends without waiting for it: an SFTP
// request to a host that stopped answering must not hold a task past its
// deadline (f returns once the connection ends). What f returns after
// that is given to abandon, when set.
func within[T any](ctx context.Context, f func() (T, error), abandon func(T)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	var mu sync.Mutex
	gone := false
	go func() {
		v, err := f()
		mu.Lock()
		defer mu.Unlock()
		if gone {
			if err == nil && abandon != nil {
				abandon(v)
			}
			return
		}
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		select {
		case r := <-ch:
			return r.v, r.err
		default:
		}
		gone = true
		var zero T
		return zero, ctx.Err()
	}
}

// do is within for a call that returns only an error.
func do(ctx context.Context, f func() error) error {
	_, err := within(ctx, func() (struct{}, error) { return struct{}{}, f() }, nil)
	return err
}
