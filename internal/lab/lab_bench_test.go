package lab

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkUp measures Up (and, outside the timer, Down) of labs of 5 and
// 20 hosts: `go test -run '^$' -bench Up -benchtime 3x ./internal/lab/`.
func BenchmarkUp(b *testing.B) {
	if err := CheckMachine(Config{}); err != nil {
		b.Skipf("no lab here: %v", err)
	}
	for _, n := range []int{5, 20} {
		b.Run(strconv.Itoa(n)+"hosts", func(b *testing.B) {
			for b.Loop() {
				name := "bench-" + randomSuffix()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				_, err := Up(ctx, Config{Name: name, Masters: 3, Nodes: n - 3})
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
