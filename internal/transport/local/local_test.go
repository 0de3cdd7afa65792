package local

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/transport"
)

func TestExecEnvStdinExitCode(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	res, err := (&Conn{}).Exec(context.Background(), transport.Command{
		Script: "echo \"$GREETING\"; cat; echo oops >&2; exit 3",
		Env:    map[string]string{"GREETING": "it's $(not) `run`"},
		Stdin:  strings.NewReader("from stdin\n"),
		Stdout: &out,
		Stderr: &errb,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 {
		t.Errorf("exit code = %d, want 3", res.ExitCode)
	}
	if got, want := out.String(), "it's $(not) `run`\nfrom stdin\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if errb.String() != "oops\n" {
		t.Errorf("stderr = %q", errb.String())
	}
}

func TestExecErrexit(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	res, err := (&Conn{}).Exec(context.Background(), transport.Command{Script: "false\necho not reached", Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 1 || out.Len() != 0 {
		t.Errorf("exit %d, output %q: the script did not stop at the first failure", res.ExitCode, out.String())
	}
}

// Cancelling kills the whole process group, not only sh.
func TestExecCancelKillsGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			if b, err := os.ReadFile(pidFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	_, err := (&Conn{}).Exec(ctx, transport.Command{Script: "sleep 300 & echo $! > " + pidFile + "; wait"})
	if err == nil {
		t.Fatal("Exec returned no error after cancel")
	}
	b, _ := os.ReadFile(pidFile)
	var pid int
	for _, c := range strings.TrimSpace(string(b)) {
		pid = pid*10 + int(c-'0')
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("background sleep %d still alive after cancel", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestUploadSkipsSameSum(t *testing.T) {
	t.Parallel()
	dst := filepath.Join(t.TempDir(), "sub", "file")
	data := []byte("payload")
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	c := &Conn{}
	if err := c.Upload(context.Background(), bytes.NewReader(data), dst, 0o600, sum); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dst)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("stat %v mode %v", err, st.Mode())
	}
	// A reader that fails proves nothing is read when the sum matches.
	if err := c.Upload(context.Background(), failReader{}, dst, 0o644, sum); err != nil {
		t.Fatalf("second upload read the source: %v", err)
	}
	other := filepath.Join(filepath.Dir(dst), "other")
	if err := os.WriteFile(other, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Upload(context.Background(), bytes.NewReader([]byte("corrupted")), other, 0o644, sum); err == nil {
		t.Fatal("a wrong checksum was accepted")
	}
	if b, _ := os.ReadFile(other); string(b) != "old" {
		t.Fatalf("destination changed by a failed upload: %q", b)
	}
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, os.ErrInvalid }

func TestUploadRefusesDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	err := (&Conn{}).Upload(context.Background(), strings.NewReader("x"), dir, 0o600, "")
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("upload onto a directory: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left in the directory: %v", ents)
	}
}
