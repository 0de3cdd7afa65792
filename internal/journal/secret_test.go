package journal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func randomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

const (
	secretToken = "abcdef.0123456789abcdef"
	secretCert  = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

func secretRecord() Record {
	r := rec(Done, "kubeadm-init", "m1", 1)
	r.Outputs = map[string]string{"endpoint": "10.103.97.2:6443"}
	r.Secrets = map[string]string{"token": secretToken, "certKey": secretCert}
	return r
}

func TestSecretsNeverInClearOnDisk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := openT(t, dir, Options{})
	in := secretRecord()
	mustAppend(t, s, in, in) // twice: each value gets its own nonce
	if diff := cmp.Diff(secretToken, in.Secrets["token"]); diff != "" {
		t.Errorf("Append changed the caller's map (-want +got):\n%s", diff)
	}
	got := mustReplay(t, s)
	if diff := cmp.Diff([]Record{in, in}, got); diff != "" {
		t.Errorf("Replay (-want +got):\n%s", diff)
	}
	mustClose(t, s)

	// Grep every file of the state directory for the clear values.
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, secret := range []string{secretToken, secretCert, "0123456789abcdef"} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s contains the secret %q in clear", path, secret)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	raw := readJournal(t, dir)
	if !bytes.Contains(raw, []byte(`"endpoint":"10.103.97.2:6443"`)) {
		t.Errorf("non-secret output missing from the journal %q", raw)
	}
	lines := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
	if len(lines) != 2 || bytes.Equal(lines[0], lines[1]) {
		t.Errorf("the same secrets appended twice gave identical lines; want a fresh nonce per value")
	}

	// The key file is private and is what Replay needs.
	fi, err := os.Stat(filepath.Join(dir, "key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %#o, want 0600", fi.Mode().Perm())
	}
}

func TestWrongKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := openT(t, dir, Options{})
	mustAppend(t, s, secretRecord())
	mustClose(t, s)

	s, _ = openT(t, dir, Options{Key: randomKey(t)})
	_, err := s.Replay()
	want := fmt.Sprintf("cannot decrypt secret outputs in %s: ", filepath.Join(dir, "journal"))
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "the key does not match") {
		t.Fatalf("Replay with another key = %v, want %q... the key does not match", err, want)
	}
	if !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("error does not wrap ErrKeyMismatch: %v", err)
	}
	if !strings.Contains(err.Error(), `step "kubeadm-init", host "m1"`) {
		t.Errorf("error %q does not name the step and host", err)
	}
}

func TestKeyFromOptionsStaysOffDisk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := randomKey(t)
	s, _ := openT(t, dir, Options{Key: key})
	mustAppend(t, s, secretRecord())
	mustClose(t, s)
	if _, err := os.Stat(filepath.Join(dir, "key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("key file exists (%v), want none when Options.Key is given", err)
	}

	s, _ = openT(t, dir, Options{Key: key})
	if diff := cmp.Diff([]Record{secretRecord()}, mustReplay(t, s)); diff != "" {
		t.Errorf("Replay with the same key (-want +got):\n%s", diff)
	}

	// A reader without the key (`status`) sees the records and the names
	// of the secrets, not their values; with the key, it decrypts.
	r, err := ReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.HasKey() {
		t.Errorf("HasKey() = true with no key file and no key given")
	}
	blank := secretRecord()
	blank.Secrets = map[string]string{"token": "", "certKey": ""}
	if diff := cmp.Diff([]Record{blank}, mustReplay(t, r)); diff != "" {
		t.Errorf("ReadOnly Replay without the key (-want +got):\n%s", diff)
	}
	r, err = ReadOnlyWith(dir, Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Record{secretRecord()}, mustReplay(t, r)); diff != "" {
		t.Errorf("ReadOnlyWith the key (-want +got):\n%s", diff)
	}
}

// A sealed value moved to another name (or record) does not decrypt.
func TestSecretBoundToItsPlace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := openT(t, dir, Options{})
	mustAppend(t, s, secretRecord())
	mustClose(t, s)

	raw := bytes.TrimSuffix(readJournal(t, dir), []byte("\n"))
	var r Record
	if err := json.Unmarshal(raw[crcLen+1:], &r); err != nil {
		t.Fatal(err)
	}
	r.Secrets["token"], r.Secrets["certKey"] = r.Secrets["certKey"], r.Secrets["token"]
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("%08x %s\n", crc32.Checksum(js, castagnoli()), js)
	writeJournal(t, dir, []byte(line))

	s, _ = openT(t, dir, Options{})
	if _, err := s.Replay(); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("Replay of swapped secrets = %v, want a decryption error", err)
	}
}

func TestKeyFileChecks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		wantErr string
	}{
		{"readable by others", base64.StdEncoding.EncodeToString(make([]byte, 32)), 0o644, "run chmod 600"},
		{"not base64", "not a key!", 0o600, "is not base64 of 32 bytes"},
		{"too short", base64.StdEncoding.EncodeToString(make([]byte, 16)), 0o600, "is not base64 of 32 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "key")
			if err := os.WriteFile(path, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := Open(dir, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
				t.Errorf("Open = %v, want an error naming %s with %q", err, path, tc.wantErr)
			}
		})
	}
}
