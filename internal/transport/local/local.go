// Package local is the transport for `address: local` hosts: commands run
// on the control machine itself.
package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/sealflow/sealflow/internal/transport"
)

// Conn runs commands on this machine. The zero value is ready to use.
type Conn struct {
	// TempDir holds the private script files; "" means os.TempDir().
	TempDir string
}

var _ transport.Conn = (*Conn)(nil)

// Exec writes the script to a private file (so it never shows on a
// command line) and runs it with `sh -e FILE` in its own process group;
// cancelling ctx kills the whole group.
func (c *Conn) Exec(ctx context.Context, cmd transport.Command) (transport.Result, error) {
	if err := ctx.Err(); err != nil {
		return transport.Result{}, err
	}
	dir, err := os.MkdirTemp(c.TempDir, "sealflow.")
	if err != nil {
		return transport.Result{}, fmt.Errorf("private temp directory: %w", err)
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte(cmd.Script), 0o600); err != nil {
		return transport.Result{}, fmt.Errorf("write script: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return transport.Result{}, fmt.Errorf("private temp directory: %w", err)
	}

	argv := []string{"sh", "-e", script}
	if cmd.Become && os.Geteuid() != 0 {
		argv = append([]string{"sudo", "-n", "-E", "--"}, argv...)
	}
	p := exec.Command(argv[0], argv[1:]...)
	p.Env = append(append(os.Environ(), envList(cmd.Env)...), "SEALFLOW_TMP="+filepath.Join(dir, "tmp"))
	p.Stdin = cmd.Stdin
	p.Stdout = orDiscard(cmd.Stdout)
	p.Stderr = orDiscard(cmd.Stderr)
	p.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Output pipes held open by a backgrounded grandchild must not keep
	// Wait blocked forever.
	p.WaitDelay = 2 * time.Second
	if err := p.Start(); err != nil {
		return transport.Result{}, fmt.Errorf("start sh: %w", err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
		case <-done:
		}
	}()
	err = p.Wait()
	close(done)
	if ctx.Err() != nil {
		return transport.Result{ExitCode: -1}, ctx.Err()
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return transport.Result{ExitCode: exitCode(exit)}, nil
	}
	if err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		return transport.Result{}, err
	}
	return transport.Result{}, nil
}

func exitCode(e *exec.ExitError) int {
	if ws, ok := e.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return e.ExitCode()
}

// Upload copies src to dst through a temp file in dst's directory, then
// renames it. Nothing is written when dst already has sum.
func (c *Conn) Upload(ctx context.Context, src io.Reader, dst string, mode fs.FileMode, sum string) error {
	if sum != "" {
		if have, err := transport.FileSum(dst); err == nil && have == sum {
			return os.Chmod(dst, mode)
		}
	}
	if st, err := os.Stat(dst); err == nil && st.IsDir() {
		return fmt.Errorf("upload %s: it is a directory; give the path of the file to write", dst)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("upload %s: %w", dst, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".sealflow-*")
	if err != nil {
		return fmt.Errorf("upload %s: %w", dst, err)
	}
	defer os.Remove(tmp.Name())
	// The temp file has the final mode before any data is in it.
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("upload %s: %w", dst, err)
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), readerCtx{ctx, src})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("upload %s: %w", dst, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); sum != "" && got != sum {
		return fmt.Errorf("upload %s: sha256 %s does not match the expected %s", dst, got, sum)
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return fmt.Errorf("upload %s: %w", dst, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("upload %s: %w", dst, err)
	}
	return nil
}

// Close does nothing: a local connection holds no resources.
func (c *Conn) Close() error { return nil }

func envList(env map[string]string) []string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

type readerCtx struct {
	ctx context.Context
	r   io.Reader
}

func (r readerCtx) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
