package sshconn

import (
	"bytes"
	"context"
	"testing"

	"github.com/sealflow/sealflow/internal/lab"
	"github.com/sealflow/sealflow/internal/transport"
)

// BenchmarkExecLab runs `true` on a lab host (a fresh /root: Debian's
// default rc files), one command after another on one connection: on the
// connection's runner, and in a session of its own ($$ keeps it off the
// runner).
func BenchmarkExecLab(b *testing.B) {
	l := lab.ForTest(b, lab.Config{Name: "benchexec", Masters: 1})
	h := l.Hosts[0]
	ctx := context.Background()
	c, err := Dial(ctx, Config{Address: h.Address, User: "root", KnownHosts: l.KnownHosts, HostName: h.Name, KeyFiles: []string{l.Key}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for _, bc := range []struct{ name, script string }{
		{"runner", "true"},
		{"session", "true # $$"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if err := transport.Run(ctx, c, transport.Command{Script: bc.script}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUpload32MiB(b *testing.B) {
	s := startSSHD(b, "")
	c := s.dial(s.config())
	data := make([]byte, 32<<20)
	dst := b.TempDir() + "/file"
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		// No sum: every round sends the whole file.
		if err := c.Upload(context.Background(), bytes.NewReader(data), dst, 0o644, ""); err != nil {
			b.Fatal(err)
		}
	}
}
