package lab

import (
	"context"
	"testing"
	"time"
)

// BenchmarkUp measures Up (and, outside the timer, Down) of labs of 5 and
// 20 hosts, plain, NodeStack and Systemd ones of 5:
// `go test -run '^$' -bench Up -benchtime 3x ./internal/lab/`.
func BenchmarkUp(b *testing.B) {
	if err := CheckMachine(Config{}); err != nil {
		b.Skipf("no lab here: %v", err)
	}
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"5hosts", Config{Masters: 3, Nodes: 2}},
		{"20hosts", Config{Masters: 3, Nodes: 17}},
		{"5hosts-nodestack", Config{Masters: 3, Nodes: 2, NodeStack: true}},
		{"5hosts-systemd", Config{Masters: 3, Nodes: 2, Systemd: true}},
	} {
		b.Run(c.name, func(b *testing.B) {
			if err := CheckMachine(c.cfg); err != nil {
				b.Skipf("no such lab here: %v", err)
			}
			for b.Loop() {
				name := "bench-" + randomSuffix()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				cfg := c.cfg
				cfg.Name = name
				_, err := Up(ctx, cfg)
				b.StopTimer()
				if derr := Down(ctx, name); derr != nil {
					b.Error(derr)
				}
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
