package steptest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/internal/transport"
)

func TestLocal(t *testing.T) {
	t.Parallel()
	c := New(Local)
	var out bytes.Buffer
	res, err := c.Exec(context.Background(), transport.Command{
		Script: `read x; echo "$A $x"; exit 3`,
		Env:    map[string]string{"A": "a b"},
		Stdin:  strings.NewReader("in\n"),
		Stdout: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || out.String() != "a b in\n" {
		t.Errorf("got code %d output %q, want 3 and %q", res.ExitCode, out.String(), "a b in\n")
	}
	want := []Command{{Script: `read x; echo "$A $x"; exit 3`, Env: map[string]string{"A": "a b"}, Stdin: "in\n"}}
	if d := cmp.Diff(want, c.Commands()); d != "" {
		t.Errorf("recorded commands (-want +got):\n%s", d)
	}
}

func TestUpload(t *testing.T) {
	t.Parallel()
	c := &Conn{Root: t.TempDir()}
	data := []byte("hello")
	s := sha256.Sum256(data)
	sum := hex.EncodeToString(s[:])
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := filepath.Join("/etc", "f"+string(rune('a'+i)))
			if err := c.Upload(ctx, bytes.NewReader(data), dst, 0o600, sum); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := c.Upload(ctx, bytes.NewReader(data), "/etc/fa", 0o600, sum); err != nil {
		t.Fatal(err)
	}
	if err := c.Upload(ctx, strings.NewReader("other"), "/etc/fz", 0o600, sum); err == nil {
		t.Error("upload with a wrong sum succeeded")
	}
	ups := c.Uploads()
	if len(ups) != 6 || !ups[4].Skipped || ups[4].Size != 0 || ups[0].Skipped || ups[0].Size != 5 {
		t.Errorf("uploads = %+v, want 4 written, 1 skipped, 1 failed", ups)
	}
	if ents, _ := os.ReadDir(filepath.Join(c.Root, "etc")); len(ents) != 4 {
		t.Errorf("files after the uploads: %v, want fa..fd only", ents)
	}
}
