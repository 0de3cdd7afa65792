package journal

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSaveRunAndReadRunFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := openT(t, dir, Options{})
	files := map[string][]byte{
		PlanFile:      []byte("steps:\n  - name: a\n"),
		InventoryFile: []byte("hosts: [m1]\n"),
		VarsFile:      []byte(`{"k8s":"v1.34.4"}`),
	}
	if err := s.SaveRun(files); err != nil {
		t.Fatal(err)
	}
	// Saving again replaces the content.
	files[PlanFile] = []byte("steps: []\n")
	if err := s.SaveRun(map[string][]byte{PlanFile: files[PlanFile]}); err != nil {
		t.Fatal(err)
	}
	r, err := ReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		for who, read := range map[string]func(string) ([]byte, error){"State": s.ReadRunFile, "Reader": r.ReadRunFile} {
			got, err := read(name)
			if err != nil {
				t.Errorf("%s.ReadRunFile(%s): %v", who, name, err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s.ReadRunFile(%s) (-want +got):\n%s", who, name, diff)
			}
		}
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %#o, want 0600", name, fi.Mode().Perm())
		}
	}
	// No temporary files are left behind.
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"inventory.yaml", "journal", "key", "lock", "plan.yaml", "vars.json"}, names); diff != "" {
		t.Errorf("state directory entries (-want +got):\n%s", diff)
	}

	if _, err := s.ReadRunFile("other.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadRunFile of a missing file = %v, want fs.ErrNotExist", err)
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", "journal", "key", "lock", "logs", ".hidden", "a\x00b"} {
		if err := s.SaveRun(map[string][]byte{bad: []byte("x")}); err == nil {
			t.Errorf("SaveRun(%q) succeeded, want a refusal", bad)
		}
		if _, err := s.ReadRunFile(bad); err == nil {
			t.Errorf("ReadRunFile(%q) succeeded, want a refusal", bad)
		}
	}
}

func TestLogPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := openT(t, dir, Options{})
	logs := filepath.Join(dir, "logs")
	long := strings.Repeat("n", 300)
	tests := []struct {
		step, host string
		want       string // relative to DIR/logs; empty: only checked for safety
	}{
		{"install", "node-1", "install/node-1.log"},
		{"kubeadm-init", "10.0.0.1", "kubeadm-init/10.0.0.1.log"},
		{"a/b", "../../etc/passwd", "a%2Fb/..%2F..%2Fetc%2Fpasswd.log"},
		{"..", "..", "%2E%2E/%2E%2E.log"},
		{".", ".", "%2E/%2E.log"},
		{"s", "h\x00x", "s/h%00x.log"},
		{"s", "50%2F", "s/50%252F.log"},
		{"s", "line\nbreak", "s/line%0Abreak.log"},
		{"", "", "%/%.log"},
		{"s", long, ""},
		{"s", long + "x", ""},
	}
	seen := map[string]string{}
	for _, tc := range tests {
		got := s.LogPath(tc.step, tc.host)
		rel, err := filepath.Rel(logs, got)
		if err != nil {
			t.Fatal(err)
		}
		if tc.want != "" && rel != tc.want {
			t.Errorf("LogPath(%q, %q) = DIR/logs/%s, want DIR/logs/%s", tc.step, tc.host, rel, tc.want)
		}
		parts := strings.Split(rel, "/")
		if len(parts) != 2 || parts[0] == ".." || parts[0] == "." || strings.ContainsRune(rel, 0) || len(parts[1]) > 255 {
			t.Errorf("LogPath(%q, %q) = %q: not one file in one directory under DIR/logs", tc.step, tc.host, got)
		}
		key := tc.step + "\x00" + tc.host
		if prev, ok := seen[got]; ok && prev != key {
			t.Errorf("LogPath gives %q for both %q and %q", got, prev, key)
		}
		seen[got] = key
	}
	// The path is usable as is.
	p := s.LogPath("a/b", "../x")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("out"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// snapshot describes every file of a directory tree: what a write would
// change.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fi.Mode().String() + " " + fi.ModTime().Format(time.RFC3339Nano)
		if !d.IsDir() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %d %x", len(b), sha256.Sum256(b))
		}
		out[path] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestReadOnlyWhileLockedWritesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := openT(t, dir, Options{})
	want := []Record{secretRecord(), rec(Started, "join", "w1", 1)}
	mustAppend(t, s, want...)
	if err := s.SaveRun(map[string][]byte{PlanFile: []byte("steps: []\n")}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)

	r, err := ReadOnly(dir)
	if err != nil {
		t.Fatalf("ReadOnly while a State holds the lock: %v", err)
	}
	if r.Dir() != dir {
		t.Errorf("Dir() = %q, want %q", r.Dir(), dir)
	}
	if diff := cmp.Diff(want, mustReplay(t, r)); diff != "" {
		t.Errorf("ReadOnly Replay (-want +got):\n%s", diff)
	}
	if _, err := r.ReadRunFile(PlanFile); err != nil {
		t.Error(err)
	}
	if diff := cmp.Diff(before, snapshot(t, dir)); diff != "" {
		t.Errorf("ReadOnly changed the state directory (-before +after):\n%s", diff)
	}

	// The State keeps working, and the reader sees its new records.
	more := rec(Done, "join", "w1", 1)
	mustAppend(t, s, more)
	if diff := cmp.Diff(append(want, more), mustReplay(t, r)); diff != "" {
		t.Errorf("ReadOnly Replay after another append (-want +got):\n%s", diff)
	}
}

func TestReadOnlyMissingDirectory(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "nothing-here")
	if _, err := ReadOnly(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadOnly(missing) = %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadOnly created %s", dir)
	}
	// An empty directory has no records and no error.
	empty := t.TempDir()
	r, err := ReadOnly(empty)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustReplay(t, r); len(got) != 0 {
		t.Errorf("Replay of an empty directory = %v", got)
	}
}
