package sshconn

import (
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
