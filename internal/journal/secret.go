package journal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KeySize is the length in bytes of a state key (AES-256).
const KeySize = 32

// ErrKeyMismatch is wrapped by Replay's error when secret outputs do not
// decrypt under the key in use.
var ErrKeyMismatch = errors.New("the key does not match the one the journal was written with; " +
	"use the key file of this state directory or the SEALFLOW_STATE_KEY the run was started with")

// errNoKey is returned when secrets are to be encrypted with no key (a
// State always has one).
var errNoKey = errors.New("no state key")

const keyFile = "key"

// sealer encrypts and decrypts secret output values. A nil *sealer has no
// key: it refuses both.
type sealer struct {
	aead cipher.AEAD
}

func newSealer(key []byte) (*sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("state key is %d bytes; it must be %d (base64 of 32 random bytes)", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("state key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("state key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// additional binds a sealed value to where it belongs.
func additional(step, host, name string) []byte {
	var b bytes.Buffer
	b.WriteString("sealflow journal secret v1\x00")
	b.WriteString(step)
	b.WriteByte(0)
	b.WriteString(host)
	b.WriteByte(0)
	b.WriteString(name)
	return b.Bytes()
}

// sealAll returns a new map of the values encrypted and base64-encoded.
func (s *sealer) sealAll(step, host string, clear map[string]string) (map[string]string, error) {
	if s == nil {
		return nil, errNoKey
	}
	out := make(map[string]string, len(clear))
	for name, v := range clear {
		nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(v)+s.aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("random nonce: %w", err)
		}
		sealed := s.aead.Seal(nonce, nonce, []byte(v), additional(step, host, name))
		out[name] = base64.StdEncoding.EncodeToString(sealed)
	}
	return out, nil
}

// openAll returns a new map of the values decrypted.
func (s *sealer) openAll(step, host string, sealed map[string]string) (map[string]string, error) {
	if s == nil {
		return nil, errNoKey
	}
	out := make(map[string]string, len(sealed))
	for name, v := range sealed {
		raw, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(raw) < s.aead.NonceSize()+s.aead.Overhead() {
			return nil, fmt.Errorf("secret %q is not an encrypted value", name)
		}
		n := s.aead.NonceSize()
		clear, err := s.aead.Open(nil, raw[:n], raw[n:], additional(step, host, name))
		if err != nil {
			return nil, fmt.Errorf("secret %q: %w", name, ErrKeyMismatch)
		}
		out[name] = string(clear)
	}
	return out, nil
}

// readKeyFile reads DIR/key. It returns an error wrapping fs.ErrNotExist when
// there is none.
func readKeyFile(dir string) ([]byte, error) {
	path := filepath.Join(dir, keyFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read state key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read state key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("state key %s is accessible by other users (mode %#o); run chmod 600 %s",
			path, fi.Mode().Perm(), path)
	}
	text := make([]byte, 256)
	n, err := f.Read(text)
	if err != nil {
		return nil, fmt.Errorf("read state key %s: %w", path, err)
	}
	key, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(text[:n])))
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("state key %s is not base64 of %d bytes", path, KeySize)
	}
	return key, nil
}

// createKeyFile writes a new random key to DIR/key (mode 0600, never
// replacing an existing file) and returns it.
func createKeyFile(dir string) ([]byte, error) {
	path := filepath.Join(dir, keyFile)
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("create state key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create state key: %w", err)
	}
	text := base64.StdEncoding.EncodeToString(key) + "\n"
	_, werr := f.WriteString(text)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("create state key %s: %w", path, werr)
	}
	return key, nil
}

// loadKey returns the key to use: opts.Key when given, else the key file,
// created when create is set and there is none. created reports a new file.
func loadKey(dir string, optKey []byte, create bool) (key []byte, created bool, err error) {
	if optKey != nil {
		if len(optKey) != KeySize {
			return nil, false, fmt.Errorf("state key is %d bytes; it must be %d (SEALFLOW_STATE_KEY is base64 of 32 random bytes)",
				len(optKey), KeySize)
		}
		return append([]byte(nil), optKey...), false, nil
	}
	key, err = readKeyFile(dir)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !create {
		return key, false, err
	}
	key, err = createKeyFile(dir)
	return key, err == nil, err
}

// runValueStep is the step name sealed run values are bound to: no step
// can have it (a NUL byte), so a sealed output cannot pass for one.
const runValueStep = "\x00run value"

// SealValue encrypts a value of the run (a secret var given with --set)
// under the state key, bound to name, for a run file.
func (s *State) SealValue(name, value string) (string, error) {
	if s.keyErr != nil {
		return "", s.keyErr
	}
	out, err := s.seal.sealAll(runValueStep, "", map[string]string{name: value})
	if err != nil {
		return "", fmt.Errorf("seal %s: %w", name, err)
	}
	return out[name], nil
}

// OpenValue decrypts what SealValue returned for name.
func (s *State) OpenValue(name, sealed string) (string, error) {
	if s.keyErr != nil {
		return "", s.keyErr
	}
	out, err := s.seal.openAll(runValueStep, "", map[string]string{name: sealed})
	if err != nil {
		return "", fmt.Errorf("open %s: %w", name, err)
	}
	return out[name], nil
}
