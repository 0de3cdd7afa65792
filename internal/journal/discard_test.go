package journal

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Discard forgets the run (journal, run files, logs, and a record queued
// just before) and keeps the key, the lock and any other file; the State
// goes on with an empty journal that a reopen reads back.
func TestDiscard(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := openT(t, dir, Options{})
	mustAppend(t, s, rec(Started, "a", "h1", 1), Record{Event: Done, Step: "a", Host: "h1", Secrets: map[string]string{"token": "abcdef"}})
	if err := s.Queue(rec(Started, "b", "h1", 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveRun(map[string][]byte{PlanFile: []byte("p"), InventoryFile: []byte("i"), VarsFile: []byte("{}"), MetaFile: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	log := s.LogPath("a", "h1")
	if err := os.MkdirAll(filepath.Dir(log), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{log, filepath.Join(dir, "cluster.json")} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	key, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		t.Fatal(err)
	}

	if err := s.Discard(); err != nil {
		t.Fatal(err)
	}
	if got := mustReplay(t, s); len(got) != 0 {
		t.Errorf("Replay after Discard = %v, want nothing", got)
	}
	for _, name := range []string{PlanFile, InventoryFile, VarsFile, MetaFile, logsDir} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after Discard: %v, want it removed", name, err)
		}
	}
	for _, name := range []string{lockFile, "cluster.json"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s after Discard: %v, want it kept", name, err)
		}
	}
	if after, err := os.ReadFile(filepath.Join(dir, keyFile)); err != nil || string(after) != string(key) {
		t.Errorf("the key changed or went: %v", err)
	}
	// Still locked.
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Errorf("Open during the State's life after Discard: %v, want ErrLocked", err)
	}

	next := Record{Event: Done, Step: "c", Host: "h2", Secrets: map[string]string{"key": "0123456789"}}
	mustAppend(t, s, next)
	mustClose(t, s)
	s2, _ := openT(t, dir, Options{})
	got := mustReplay(t, s2)
	if len(got) != 1 || got[0].Step != "c" {
		t.Fatalf("after reopening: %+v, want only the record appended after Discard", got)
	}
	if diff := cmp.Diff(next.Secrets, got[0].Secrets); diff != "" {
		t.Errorf("secret under the kept key (-want +got):\n%s", diff)
	}
}

// A corrupt journal makes a State refuse appends; Discard makes it usable.
func TestDiscardCorrupt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := openT(t, dir, Options{})
	mustAppend(t, s, rec(Started, "a", "h1", 1), rec(Done, "a", "h1", 1))
	mustClose(t, s)
	b := readJournal(t, dir)
	b[0] ^= 1 // the first record's checksum; another record follows
	writeJournal(t, dir, b)
	s, _ = openT(t, dir, Options{})
	if err := s.Append(rec(Started, "b", "h1", 1)); err == nil {
		t.Fatal("Append to a corrupt journal succeeded")
	}
	if err := s.Discard(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, rec(Started, "b", "h1", 1))
	if got := mustReplay(t, s); len(got) != 1 || got[0].Step != "b" {
		t.Errorf("Replay = %+v, want the one new record", got)
	}
}

func TestDiscardClosed(t *testing.T) {
	t.Parallel()
	s, _ := openT(t, t.TempDir(), Options{})
	mustClose(t, s)
	if err := s.Discard(); err == nil {
		t.Error("Discard of a closed State succeeded")
	}
}
