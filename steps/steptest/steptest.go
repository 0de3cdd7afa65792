// Package steptest is a transport.Conn for unit tests of step kinds. It
// records every command and upload. Commands are answered by a handler
// (Local runs them with this machine's sh); uploads are written to files
// under a root directory, keeping the Upload contract (sum check, skip
// when the file already has the sum, temp file then rename, mode).
package steptest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/sealflow/sealflow/internal/transport"
	"github.com/sealflow/sealflow/internal/transport/local"
)

// Handler answers a command.
type Handler func(ctx context.Context, cmd transport.Command) (transport.Result, error)

// Command is a recorded command (its Stdin read into a string).
type Command struct {
	Script string
	Env    map[string]string
	Stdin  string
	Become bool
}

// Upload is a recorded upload.
type Upload struct {
	Dst  string // as asked
	Path string // where it was written
	Mode fs.FileMode
	Sum  string
	// Size is the number of bytes read from the source; Skipped says the
	// file already had Sum and nothing was read.
	Size    int64
	Skipped bool
}

// Conn is a fake connection. It is safe for concurrent use. The zero
// value answers every command with exit status 0 and writes uploads to
// their destination path on this machine.
type Conn struct {
	// Root, when set, is prefixed to upload destinations.
	Root string
	// Handler answers commands; nil means exit status 0 and no output.
	Handler Handler

	mu       sync.Mutex
	commands []Command
	uploads  []Upload
	closed   bool
}

var _ transport.Conn = (*Conn)(nil)

// New returns a Conn answering commands with h.
func New(h Handler) *Conn { return &Conn{Handler: h} }

// Exec records cmd and answers it with the handler.
func (c *Conn) Exec(ctx context.Context, cmd transport.Command) (transport.Result, error) {
	rec := Command{Script: cmd.Script, Env: copyMap(cmd.Env), Become: cmd.Become}
	if cmd.Stdin != nil {
		b, err := io.ReadAll(cmd.Stdin)
		if err != nil {
			return transport.Result{}, fmt.Errorf("read stdin: %w", err)
		}
		rec.Stdin = string(b)
		cmd.Stdin = bytes.NewReader(b)
	}
	c.mu.Lock()
	closed := c.closed
	c.commands = append(c.commands, rec)
	h := c.Handler
	c.mu.Unlock()
	if closed {
		return transport.Result{}, errors.New("steptest: connection closed")
	}
	if err := ctx.Err(); err != nil {
		return transport.Result{}, err
	}
	if h == nil {
		return transport.Result{}, nil
	}
	return h(ctx, cmd)
}

// Upload writes src to Root+dst through a temp file, as the contract
// says, and records it.
func (c *Conn) Upload(ctx context.Context, src io.Reader, dst string, mode fs.FileMode, sum string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return errors.New("steptest: connection closed")
	}
	path := filepath.Join(c.Root, dst)
	rec := Upload{Dst: dst, Path: path, Mode: mode, Sum: sum}
	err := func() error {
		if sum != "" {
			if have, err := transport.FileSum(path); err == nil && have == sum {
				rec.Skipped = true
				return nil
			}
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".sealflow-partial")
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(f, h), src)
		rec.Size = n
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil && sum != "" && hex.EncodeToString(h.Sum(nil)) != sum {
			err = fmt.Errorf("sha256 of the data is %x, want %s", h.Sum(nil), sum)
		}
		if err == nil {
			err = os.Chmod(tmp, mode.Perm())
		}
		if err == nil {
			err = os.Rename(tmp, path)
		}
		if err != nil {
			os.Remove(tmp)
		}
		return err
	}()
	c.mu.Lock()
	c.uploads = append(c.uploads, rec)
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("upload to %s: %w", dst, err)
	}
	return nil
}

// Close marks the connection closed: later calls fail.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

// Commands returns the commands run so far.
func (c *Conn) Commands() []Command {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Command(nil), c.commands...)
}

// Uploads returns the uploads done so far.
func (c *Conn) Uploads() []Upload {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Upload(nil), c.uploads...)
}

// Local runs commands with this machine's `sh -e` through the local
// transport: the command's environment added to this process's, its
// stdin, stdout and stderr, a private $SEALFLOW_TMP. Become is ignored.
func Local(ctx context.Context, cmd transport.Command) (transport.Result, error) {
	cmd.Become = false
	return (&local.Conn{}).Exec(ctx, cmd)
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
