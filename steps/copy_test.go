package steps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/internal/transport"
	"github.com/sealflow/sealflow/steps/steptest"
)

func TestCopyParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		params  Params
		wantErr string
	}{
		{"ok", Params{"src": "a", "dest": "/b", "mode": "0600"}, ""},
		{"no mode", Params{"src": "a", "dest": "/b"}, ""},
		{"no src", Params{"dest": "/b"}, "src:"},
		{"relative dest", Params{"src": "a", "dest": "b"}, `dest: "b" is not an absolute`},
		{"dir dest", Params{"src": "a", "dest": "/b/"}, `dest: "/b/"`},
		{"bad mode", Params{"src": "a", "dest": "/b", "mode": "rw-r--r--"}, `mode: "rw-r--r--"`},
		{"mode too big", Params{"src": "a", "dest": "/b", "mode": "17777"}, `mode: "17777"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := copyKind().New(tt.params)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && !strings.Contains(got, tt.wantErr) {
				t.Errorf("New(%v) error = %q, want %q", tt.params, got, tt.wantErr)
			}
		})
	}
}

func writeSrc(t *testing.T, data string, mode os.FileMode) (string, string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src.txt")
	if err := os.WriteFile(src, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(src, mode); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256([]byte(data))
	return src, hex.EncodeToString(s[:])
}

func TestCopyRunAndDone(t *testing.T) {
	t.Parallel()
	src, sum := writeSrc(t, "payload\n", 0o640)
	dest := filepath.Join(t.TempDir(), "etc", "app.conf")
	k := copyKind()
	step, err := k.New(Params{"src": src, "dest": dest})
	if err != nil {
		t.Fatal(err)
	}
	conn := steptest.New(steptest.Local)
	tgt := &Target{Host: Host{Name: "n1"}, Conn: conn}
	ctx := context.Background()
	check := step.(Checker)

	done, _, err := check.Done(ctx, tgt)
	if err != nil || done {
		t.Fatalf("Done before the copy = %v, %v; want false", done, err)
	}
	out, err := step.Run(ctx, tgt)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(Outputs{"sha256": sum}, out); d != "" {
		t.Errorf("outputs (-want +got):\n%s", d)
	}
	got, _ := os.ReadFile(dest)
	st, _ := os.Stat(dest)
	if string(got) != "payload\n" || st.Mode().Perm() != 0o640 {
		t.Errorf("dest holds %q mode %v, want the source's content and mode 0640", got, st.Mode().Perm())
	}
	done, out, err = check.Done(ctx, tgt)
	if err != nil || !done || out["sha256"] != sum {
		t.Errorf("Done after the copy = %v, %v, %v; want true with the sum", done, out, err)
	}

	// Run again: safe, and the upload is skipped.
	if _, err := step.Run(ctx, tgt); err != nil {
		t.Fatal(err)
	}
	ups := conn.Uploads()
	if len(ups) != 2 || ups[0].Skipped || !ups[1].Skipped || ups[1].Size != 0 {
		t.Errorf("uploads = %+v, want one sent then one skipped", ups)
	}

	// A changed mode or content on the host: not done any more.
	os.Chmod(dest, 0o666)
	if done, _, _ := check.Done(ctx, tgt); done {
		t.Error("Done = true with another mode on the host")
	}
	os.Chmod(dest, 0o640)
	os.WriteFile(dest, []byte("changed"), 0o640)
	if done, _, _ := check.Done(ctx, tgt); done {
		t.Error("Done = true with other content on the host")
	}
	if !SafeToRerun(k, step) {
		t.Error("copy should be safe to re-run")
	}
}

func TestCopyModeParam(t *testing.T) {
	t.Parallel()
	src, _ := writeSrc(t, "x", 0o644)
	dest := filepath.Join(t.TempDir(), "x")
	step, err := copyKind().New(Params{"src": src, "dest": dest, "mode": "0600"})
	if err != nil {
		t.Fatal(err)
	}
	conn := steptest.New(steptest.Local)
	if _, err := step.Run(context.Background(), &Target{Conn: conn}); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(dest); st.Mode().Perm() != 0o600 {
		t.Errorf("dest mode %v, want 0600", st.Mode().Perm())
	}
	if d := cmp.Diff([]string{"copy " + src + " to " + dest + " (mode 0600)"}, step.(Describer).Describe(nil)); d != "" {
		t.Errorf("Describe (-want +got):\n%s", d)
	}
}

func TestCopyMissingSource(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "missing.tar")
	step, err := copyKind().New(Params{"src": src, "dest": "/opt/x"})
	if err != nil {
		t.Fatal(err)
	}
	conn := steptest.New(nil)
	_, err = step.Run(context.Background(), &Target{Conn: conn})
	if err == nil || !strings.Contains(err.Error(), src) {
		t.Errorf("Run with a missing source: %v, want an error naming %s", err, src)
	}
	if n := len(conn.Uploads()); n != 0 {
		t.Errorf("%d uploads with a missing source", n)
	}
}

// Many hosts copying the same file at once (one kind, as in a run): each
// gets it with the right sum.
func TestCopyManyHosts(t *testing.T) {
	t.Parallel()
	src, sum := writeSrc(t, strings.Repeat("data", 1000), 0o644)
	k := copyKind()
	root := t.TempDir()
	done := make(chan error)
	for i := 0; i < 8; i++ {
		go func() {
			step, err := k.New(Params{"src": src, "dest": "/opt/pkg.tar"})
			if err != nil {
				done <- err
				return
			}
			conn := &steptest.Conn{Root: filepath.Join(root, string(rune('a'+i)))}
			out, err := step.Run(context.Background(), &Target{Conn: conn})
			if err == nil && out["sha256"] != sum {
				t.Errorf("host %d: sha256 %q, want %q", i, out["sha256"], sum)
			}
			done <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	for i := 0; i < 8; i++ {
		if s, err := transport.FileSum(filepath.Join(root, string(rune('a'+i)), "opt", "pkg.tar")); err != nil || s != sum {
			t.Errorf("host %d: file sum %q, %v", i, s, err)
		}
	}
}

// A directory destination receives the file under its own name, as cp
// does; nothing else is left in it.
func TestCopyAndDistributeIntoDirectory(t *testing.T) {
	t.Parallel()
	src, sum := writeSrc(t, "payload\n", 0o640)
	for _, kind := range []*Kind{copyKind(), distributeKind()} {
		t.Run(kind.Name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			params := Params{"src": src, "dest": dir}
			if kind.Name == "copy" {
				params["mode"] = "0600"
			}
			step, err := kind.New(params)
			if err != nil {
				t.Fatal(err)
			}
			tgt := &Target{Host: Host{Name: "n1"}, Conn: steptest.New(steptest.Local)}
			ctx := context.Background()
			if done, _, err := step.(Checker).Done(ctx, tgt); err != nil || done {
				t.Fatalf("Done before = %v, %v", done, err)
			}
			if _, err := step.Run(ctx, tgt); err != nil {
				t.Fatal(err)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 || ents[0].Name() != filepath.Base(src) {
				t.Fatalf("files in the directory: %v, want only %s", ents, filepath.Base(src))
			}
			got, _ := os.ReadFile(filepath.Join(dir, filepath.Base(src)))
			if string(got) != "payload\n" {
				t.Errorf("content %q", got)
			}
			if done, out, err := step.(Checker).Done(ctx, tgt); err != nil || !done || out["sha256"] != sum {
				t.Errorf("Done after = %v, %v, %v; want true", done, out, err)
			}
		})
	}
}
