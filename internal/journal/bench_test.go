package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// benchRecord is what the engine writes most: a task that ended, with a
// fingerprint and a couple of outputs.
func benchRecord(i int) Record {
	return Record{
		Time: time.Now(), Event: Done, Run: 1, Step: "distribute-images",
		Host: fmt.Sprintf("node-%04d", i%1000), Attempt: 1,
		Fingerprint: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Outputs:     map[string]string{"path": "/var/lib/sealflow/images.tar", "sha256": "e3b0c44298fc1c149afbf4c8996fb924"},
		Duration:    1234 * time.Millisecond,
	}
}

// benchAppend measures Append from `parallelism`×GOMAXPROCS goroutines (0:
// one goroutine) on the real disk with real fsyncs, and reports records/s,
// bytes/record and fsyncs/record.
func benchAppend(b *testing.B, parallelism int) {
	dir := b.TempDir()
	var syncs atomic.Int64
	s, err := Open(dir, Options{sync: func(f *os.File) error {
		syncs.Add(1)
		return f.Sync()
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var n atomic.Int64
	b.ResetTimer()
	start := time.Now()
	if parallelism == 0 {
		for i := 0; i < b.N; i++ {
			if err := s.Append(benchRecord(i)); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.Append(benchRecord(int(n.Add(1)))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	elapsed := time.Since(start)
	b.StopTimer()
	fi, err := os.Stat(filepath.Join(dir, "journal"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(fi.Size())/float64(b.N), "bytes/record")
	b.ReportMetric(float64(syncs.Load())/float64(b.N), "fsyncs/record")
}

func BenchmarkAppendParallel(b *testing.B) { benchAppend(b, 32) }

func BenchmarkAppendSerial(b *testing.B) { benchAppend(b, 0) }

func BenchmarkReplay(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const records = 10000
	errs := make(chan error, records)
	for i := range records {
		go func() { errs <- s.Append(benchRecord(i)) }()
	}
	for range records {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		recs, err := s.Replay()
		if err != nil || len(recs) != records {
			b.Fatalf("Replay = %d records, %v", len(recs), err)
		}
	}
	b.ReportMetric(float64(records*b.N)/b.Elapsed().Seconds(), "records/s")
}
