package sshconn

import (
	"bytes"
	"context"
	"testing"

	"github.com/sealflow/sealflow/internal/transport"
)

func BenchmarkExec(b *testing.B) {
	s := startSSHD(b, "")
	c := s.dial(s.config())
	ctx := context.Background()
	for b.Loop() {
		if err := transport.Run(ctx, c, transport.Command{Script: "true"}); err != nil {
			b.Fatal(err)
		}
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
