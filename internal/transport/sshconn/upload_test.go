package sshconn

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingDialer counts the bytes the client sends.
type countingDialer struct{ sent atomic.Int64 }

func (d *countingDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &d.sent}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// countingReader counts the bytes read from r (and hides its other methods).
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func randomFile(t *testing.T, size int) (string, []byte, string) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	file := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return file, data, hex.EncodeToString(sum[:])
}

func checkFile(t *testing.T, file string, want []byte, mode os.FileMode) {
	t.Helper()
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read uploaded file: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("uploaded file has %d bytes that differ from the %d of the source", len(got), len(want))
	}
	st, _ := os.Stat(file)
	if st.Mode().Perm() != mode {
		t.Errorf("uploaded file mode %v, want %v", st.Mode().Perm(), mode)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(file), "."+filepath.Base(file)+".sealflow-partial")); !os.IsNotExist(err) {
		t.Errorf("the partial file is left behind (%v)", err)
	}
}

func TestUploadThenSkip(t *testing.T) {
	s := startSSHD(t, "")
	cfg := s.config()
	d := &countingDialer{}
	cfg.Dialer = d.dial
	c := s.dial(cfg)
	const size = 3 << 20
	file, data, sum := randomFile(t, size)
	dst := filepath.Join(t.TempDir(), "new", "dir", "file.bin")
	ctx := context.Background()

	f, _ := os.Open(file)
	defer f.Close()
	src := &countingReader{r: f}
	before := d.sent.Load()
	if err := c.Upload(ctx, src, dst, 0o640, sum); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, data, 0o640)
	if sent := d.sent.Load() - before; sent < size {
		t.Errorf("sent %d bytes for a %d byte file", sent, size)
	}

	// Again: the host has it, nothing is read or sent but a check.
	src = &countingReader{r: bytes.NewReader(data)}
	before = d.sent.Load()
	if err := c.Upload(ctx, src, dst, 0o640, sum); err != nil {
		t.Fatal(err)
	}
	if sent := d.sent.Load() - before; src.n != 0 || sent > 64<<10 {
		t.Errorf("second upload read %d bytes of the source and sent %d bytes, want 0 and a small check", src.n, sent)
	}

	// Without a sum the file is sent (and checked) again; the mode changes.
	if err := c.Upload(ctx, bytes.NewReader(data), dst, 0o600, ""); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, data, 0o600)

	// A sum that does not match the source is an error, and nothing is
	// left on the host.
	other := bytes.Repeat([]byte("x"), 1000)
	dst2 := filepath.Join(filepath.Dir(dst), "other.bin")
	err := c.Upload(ctx, bytes.NewReader(other), dst2, 0o600, sum)
	if err == nil {
		t.Fatal("upload with a sum that does not match the source succeeded")
	}
	t.Logf("error: %v", err)
	ents, _ := os.ReadDir(filepath.Dir(dst))
	if len(ents) != 1 {
		t.Errorf("files on the host after a failed upload: %v, want only file.bin", ents)
	}
}

// An upload cancelled halfway leaves its partial file; the next upload
// continues from it instead of sending everything again.
func TestUploadResumes(t *testing.T) {
	s := startSSHD(t, "")
	cfg := s.config()
	d := &countingDialer{}
	cfg.Dialer = d.dial
	c := s.dial(cfg)
	const size = 8 << 20
	file, data, sum := randomFile(t, size)
	dst := filepath.Join(t.TempDir(), "file.bin")
	partial := filepath.Join(filepath.Dir(dst), ".file.bin.sealflow-partial")

	ctx, cancel := context.WithCancel(context.Background())
	f, _ := os.Open(file)
	defer f.Close()
	stopAt := &cancelAfter{r: f, n: size / 2, cancel: cancel}
	if err := c.Upload(ctx, stopAt, dst, 0o644, sum); err == nil {
		t.Fatal("cancelled upload succeeded")
	}
	st, err := os.Stat(partial)
	if err != nil || st.Size() == 0 {
		t.Fatalf("no partial file after a cancelled upload: %v", err)
	}
	have := st.Size()
	t.Logf("partial file: %d of %d bytes", have, size)

	f2, _ := os.Open(file)
	defer f2.Close()
	before := d.sent.Load()
	if err := c.Upload(context.Background(), f2, dst, 0o644, sum); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, data, 0o644)
	sent := d.sent.Load() - before
	if limit := size - have + 256<<10; sent > limit {
		t.Errorf("resumed upload sent %d bytes, want at most %d (%d were on the host)", sent, limit, have)
	}

	// A partial file that is not a prefix of the source is replaced.
	if err := os.WriteFile(partial, bytes.Repeat([]byte("z"), 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(dst)
	if err := c.Upload(context.Background(), bytes.NewReader(data), dst, 0o644, sum); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, data, 0o644)
}

// cancelAfter reads from r and cancels once n bytes were read, then fails.
type cancelAfter struct {
	r      io.Reader
	n      int64
	cancel func()
	read   int64
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.read >= c.n {
		c.cancel()
		return 0, context.Canceled
	}
	if int64(len(p)) > c.n-c.read {
		p = p[:c.n-c.read]
	}
	n, err := c.r.Read(p)
	c.read += int64(n)
	return n, err
}

// A directory destination is an error that leaves nothing in it; the
// partial file of a 0600 upload is 0600 from its first byte.
func TestUploadDirectoryAndPartialMode(t *testing.T) {
	s := startSSHD(t, "")
	c := s.dial(s.config())
	ctx := context.Background()
	dir := t.TempDir()
	err := c.Upload(ctx, bytes.NewReader([]byte("secret")), dir, 0o600, "")
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("upload onto a directory: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left in the directory: %v", ents)
	}

	dst := filepath.Join(dir, "key")
	partial := filepath.Join(dir, ".key.sealflow-partial")
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- c.Upload(ctx, pr, dst, 0o600, "") }()
	if _, err := pw.Write(bytes.Repeat([]byte("s"), 64<<10)); err != nil {
		t.Fatal(err)
	}
	var mode os.FileMode
	for i := 0; i < 500; i++ {
		if st, err := os.Stat(partial); err == nil && st.Size() > 0 {
			mode = st.Mode().Perm()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	pw.CloseWithError(errors.New("stop"))
	<-done
	if mode != 0o600 {
		t.Errorf("partial file mode %04o while the data arrives, want 0600", mode)
	}
}

// Concurrent writes can leave a partial file with a hole: a later part
// written, an earlier one not. Resume must never take the hole for data:
// it continues after the last block that matches the source.
func TestUploadResumeSkipsNoHole(t *testing.T) {
	s := startSSHD(t, "")
	cfg := s.config()
	d := &countingDialer{}
	cfg.Dialer = d.dial
	c := s.dial(cfg)
	const size = 4 * resumeBlock
	file, data, sum := randomFile(t, size)
	dst := filepath.Join(t.TempDir(), "file.bin")
	partial := filepath.Join(filepath.Dir(dst), ".file.bin.sealflow-partial")
	// Blocks 0 and 2 written, block 1 a hole but for its first bytes; the
	// file as long as three blocks.
	part := make([]byte, 3*resumeBlock)
	copy(part, data[:resumeBlock+4096])
	copy(part[2*resumeBlock:], data[2*resumeBlock:3*resumeBlock])
	if err := os.WriteFile(partial, part, 0o600); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(file)
	defer f.Close()
	before := d.sent.Load()
	if err := c.Upload(context.Background(), f, dst, 0o644, sum); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dst, data, 0o644)
	sent := d.sent.Load() - before
	// From block 1 on: 3 blocks, and a little for the protocol.
	if lo, hi := int64(size-resumeBlock), int64(size-resumeBlock+256<<10); sent < lo || sent > hi {
		t.Errorf("resumed upload sent %d bytes, want %d to %d: everything from the first block that does not match", sent, lo, hi)
	}
}

// Uploads of one bound wait for each other; small ones do not take a slot.
func TestUploadSlots(t *testing.T) {
	s := startSSHD(t, "")
	cfg := s.config()
	cfg.Uploads = NewUploadSlots(1)
	c := s.dial(cfg)
	cfg.Uploads <- struct{}{} // the one slot is taken
	dir := t.TempDir()
	small := bytes.Repeat([]byte("s"), SmallUpload-1)
	if err := c.Upload(context.Background(), bytes.NewReader(small), dir+"/small", 0o644, ""); err != nil {
		t.Fatalf("a small upload waited for the taken slot: %v", err)
	}
	big := bytes.Repeat([]byte("b"), SmallUpload)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Upload(ctx, bytes.NewReader(big), dir+"/big", 0o644, ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a big upload with the slot taken: %v, want it to wait until its deadline", err)
	}
	<-cfg.Uploads
	if err := c.Upload(context.Background(), bytes.NewReader(big), dir+"/big", 0o644, ""); err != nil {
		t.Fatalf("a big upload with the slot free: %v", err)
	}
	checkFile(t, dir+"/big", big, 0o644)
}
