package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/internal/transport"
	"github.com/sealflow/sealflow/plans"
	"github.com/sealflow/sealflow/steps"
)

// noopConn is a connection that does nothing.
type noopConn struct{}

func (noopConn) Exec(context.Context, transport.Command) (transport.Result, error) {
	return transport.Result{}, nil
}
func (noopConn) Upload(context.Context, io.Reader, string, fs.FileMode, string) error {
	return nil
}
func (noopConn) Close() error { return nil }

type noopStep struct{ fail func() bool }

func (s noopStep) Run(context.Context, *steps.Target) (steps.Outputs, error) {
	if s.fail != nil && s.fail() {
		return nil, errors.New("injected failure")
	}
	return steps.Outputs{"ok": "1"}, nil
}

// benchRegistry has a `noop` kind whose task fails while fail() is true
// (for the one task left to resume).
func benchRegistry(fail func(host string) bool) *steps.Registry {
	r := steps.NewRegistry()
	r.Register(&steps.Kind{
		Name:       "noop",
		Rerunnable: true,
		Params:     []steps.Param{{Name: "key", Type: steps.String}},
		New: func(p steps.Params) (steps.Step, error) {
			k, _ := p["key"].(string)
			return noopStep{fail: func() bool { return fail(k) }}, nil
		},
	})
	return r
}

// benchPlan: nSteps steps in a chain, each on all nHosts hosts.
func benchPlan(nSteps, nHosts int) string {
	var b strings.Builder
	b.WriteString("name: bench\nhosts:\n  groups:\n    all-hosts:\n")
	for i := 0; i < nHosts; i++ {
		fmt.Fprintf(&b, "      - {name: h%04d, address: local}\n", i)
	}
	b.WriteString("steps:\n")
	for i := 0; i < nSteps; i++ {
		fmt.Fprintf(&b, "  - id: s%03d\n    kind: noop\n    with: {key: 's%03d@${{ host.name }}'}\n", i, i)
		if i > 0 {
			fmt.Fprintf(&b, "    needs: [s%03d]\n", i-1)
		}
	}
	return b.String()
}

// BenchmarkEngine10k runs 10,000 no-op tasks (100 chained steps × 100
// hosts) with a real journal, then resumes the run with one task left.
// It reports the engine's overhead per task, journal bytes per task and
// the resume time.
func BenchmarkEngine10k(b *testing.B) {
	const nSteps, nHosts = 100, 100
	src := []byte(benchPlan(nSteps, nHosts))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		failing := true
		reg := benchRegistry(func(key string) bool { return failing && key == "s099@h0099" })
		plan, err := plans.Load("bench.yaml", src, plans.LoadOptions{Kinds: reg})
		if err != nil {
			b.Fatal(err)
		}
		run := func(p *plans.Plan) (*Result, time.Duration) {
			st, err := journal.Open(filepath.Join(dir, "state"), journal.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			start := time.Now()
			res, err := Run(context.Background(), Options{
				Plan: p, State: st, KeepGoing: true,
				Connect: func(context.Context, *plans.Host) (transport.Conn, error) { return noopConn{}, nil },
			})
			if err != nil {
				b.Fatal(err)
			}
			return res, time.Since(start)
		}
		b.StartTimer()
		res, elapsed := run(plan)
		b.StopTimer()
		// The last step on the last host fails in the first run.
		if got := res.Count(StatusDone); got != nSteps*nHosts-1 {
			b.Fatalf("%d tasks done in the first run, want %d", got, nSteps*nHosts-1)
		}
		fi, err := os.Stat(filepath.Join(dir, "state", "journal"))
		if err != nil {
			b.Fatal(err)
		}
		// Resume with one task left.
		failing = false
		res, resume := run(plan)
		if !res.OK() || res.Count(StatusDone) != 1 {
			b.Fatalf("resume: ok=%v done=%d", res.OK(), res.Count(StatusDone))
		}
		tasks := float64(nSteps * nHosts)
		b.ReportMetric(float64(elapsed.Microseconds())/1000/tasks, "ms/task")
		b.ReportMetric(float64(fi.Size())/tasks, "journal-B/task")
		b.ReportMetric(float64(resume.Milliseconds()), "resume-ms")
		b.StartTimer()
	}
}

// BenchmarkEngine2kHosts runs 20,000 no-op tasks (10 chained steps × 2,000
// hosts) with a real journal on disk and a connection that returns at
// once. It reports the engine's overhead per task (wall time / tasks) and
// its memory per task: the peak of the Go heap's live bytes (runtime/metrics
// /gc/heap/live:bytes, sampled every millisecond and at the end of each GC)
// and the peak of the heap's object bytes (live and not yet collected),
// both above the heap before the run; -benchmem adds the bytes allocated.
// Time is the mean over the runs, memory the largest peak of any run.
func BenchmarkEngine2kHosts(b *testing.B) {
	const nSteps, nHosts = 10, 2000
	src := []byte(benchPlan(nSteps, nHosts))
	reg := benchRegistry(func(string) bool { return false })
	b.ReportAllocs()
	var total time.Duration
	var maxLive, maxObjects uint64
	var journalBytes int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		plan, err := plans.Load("bench.yaml", src, plans.LoadOptions{Kinds: reg})
		if err != nil {
			b.Fatal(err)
		}
		st, err := journal.Open(filepath.Join(dir, "state"), journal.Options{})
		if err != nil {
			b.Fatal(err)
		}
		peak := sampleHeap()
		b.StartTimer()
		start := time.Now()
		res, err := Run(context.Background(), Options{
			Plan: plan, State: st,
			Connect: func(context.Context, *plans.Host) (transport.Conn, error) { return noopConn{}, nil },
		})
		if err == nil {
			err = st.Close()
		}
		elapsed := time.Since(start)
		b.StopTimer()
		live, objects := peak()
		if err != nil {
			b.Fatal(err)
		}
		if !res.OK() || res.Count(StatusDone) != nSteps*nHosts {
			b.Fatalf("ok=%v done=%d, want %d done", res.OK(), res.Count(StatusDone), nSteps*nHosts)
		}
		fi, err := os.Stat(filepath.Join(dir, "state", "journal"))
		if err != nil {
			b.Fatal(err)
		}
		total += elapsed
		maxLive, maxObjects, journalBytes = max(maxLive, live), max(maxObjects, objects), fi.Size()
		b.StartTimer()
	}
	tasks := float64(nSteps * nHosts)
	b.ReportMetric(float64(total.Microseconds())/1000/tasks/float64(b.N), "ms/task")
	b.ReportMetric(float64(maxLive)/tasks, "peak-live-B/task")
	b.ReportMetric(float64(maxObjects)/tasks, "peak-heap-B/task")
	b.ReportMetric(float64(journalBytes)/tasks, "journal-B/task")
}

// sampleHeap starts sampling the heap (after a GC, so the baseline is live
// bytes only) and returns a function that stops it and returns the peaks
// of live bytes and of object bytes above that baseline.
func sampleHeap() func() (live, objects uint64) {
	runtime.GC()
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(samples)
	baseLive, baseObj := samples[0].Value.Uint64(), samples[1].Value.Uint64()
	var maxLive, maxObj uint64
	read := func() {
		metrics.Read(samples)
		maxLive = max(maxLive, samples[0].Value.Uint64())
		maxObj = max(maxObj, samples[1].Value.Uint64())
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				read()
			}
		}
	}()
	return func() (uint64, uint64) {
		close(stop)
		<-stopped
		read()
		sub := func(a, b uint64) uint64 {
			if a < b {
				return 0
			}
			return a - b
		}
		return sub(maxLive, baseLive), sub(maxObj, baseObj)
	}
}
