package sshconn

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// A private key file that other users can read is used, with ssh's
// warning naming the file and the fix; a private one gets no warning.
func TestOpenPrivateKeyWarns(t *testing.T) {
	s := startSSHD(t, "")
	for _, mode := range []os.FileMode{0o644, 0o640, 0o600} {
		if err := os.Chmod(s.userKey, mode); err != nil {
			t.Fatal(err)
		}
		var logged []string
		cfg := s.config()
		cfg.Log = func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }
		c := s.dial(cfg)
		c.Close()
		warned := strings.Contains(strings.Join(logged, "\n"), "UNPROTECTED PRIVATE KEY FILE! Permissions "+fmt.Sprintf("%#o", mode)+" for "+s.userKey) &&
			strings.Contains(strings.Join(logged, "\n"), "chmod 600 "+s.userKey)
		if want := mode != 0o600; warned != want {
			t.Errorf("key mode %#o: warned=%v, want %v (logged %q)", mode, warned, want, logged)
		}
	}
}
