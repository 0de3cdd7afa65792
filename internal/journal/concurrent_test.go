package journal

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestConcurrentAppends(t *testing.T) {
	t.Parallel()
	const workers, each = 50, 20
	dir := t.TempDir()
	var syncs atomic.Int64
	s, _ := openT(t, dir, Options{sync: func(f *os.File) error {
		syncs.Add(1)
		return f.Sync()
	}})

	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= each; i++ {
				r := rec(Done, "step", fmt.Sprintf("host-%02d", w), i)
				r.Outputs = map[string]string{"n": fmt.Sprint(i)}
				if w%5 == 0 {
					r.Secrets = map[string]string{"s": fmt.Sprintf("secret-%s-%d", r.Host, i)}
				}
				if err := s.Append(r); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Append: %v", err)
	}

	for _, replayer := range []func() ([]Record, error){
		s.Replay,
		func() ([]Record, error) { mustClose(t, s); return mustReopen(t, dir).Replay() },
	} {
		got, err := replayer()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != workers*each {
			t.Fatalf("Replay = %d records, want %d", len(got), workers*each)
		}
		// Each host's records come back complete and in its own order.
		perHost := map[string][]int{}
		for _, r := range got {
			perHost[r.Host] = append(perHost[r.Host], r.Attempt)
			if r.Outputs["n"] != fmt.Sprint(r.Attempt) {
				t.Errorf("record %s/%d has output n=%q", r.Host, r.Attempt, r.Outputs["n"])
			}
			if want := fmt.Sprintf("secret-%s-%d", r.Host, r.Attempt); r.Secrets != nil && r.Secrets["s"] != want {
				t.Errorf("record %s/%d has secret %q, want %q", r.Host, r.Attempt, r.Secrets["s"], want)
			}
		}
		wantSeq := make([]int, each)
		for i := range wantSeq {
			wantSeq[i] = i + 1
		}
		hosts := make([]string, 0, len(perHost))
		for h := range perHost {
			hosts = append(hosts, h)
		}
		sort.Strings(hosts)
		if len(hosts) != workers {
			t.Errorf("Replay has %d hosts, want %d", len(hosts), workers)
		}
		for _, h := range hosts {
			if diff := cmp.Diff(wantSeq, perHost[h]); diff != "" {
				t.Errorf("attempts of %s (-want +got):\n%s", h, diff)
			}
		}
	}
	t.Logf("%d appends from %d goroutines took %d fsyncs", workers*each, workers, syncs.Load())
}

func mustReopen(t *testing.T, dir string) *State {
	t.Helper()
	s, _ := openT(t, dir, Options{})
	return s
}

// TestGroupCommit holds the first fsync until every other append has queued
// behind it, as a slow disk would, and checks that they then share one.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	const appends = 50
	dir := t.TempDir()
	var (
		st      *State
		syncs   atomic.Int64
		pending = make(chan int, 1)
		started = make(chan struct{})
	)
	s, _ := openT(t, dir, Options{sync: func(f *os.File) error {
		if syncs.Add(1) == 1 {
			<-started
			// Wait (bounded) until every append is written or queued.
			deadline := time.Now().Add(20 * time.Second)
			for {
				b, err := os.ReadFile(f.Name())
				if err != nil {
					return err
				}
				n := bytes.Count(b, []byte("\n")) + len(st.reqs)
				if n == appends || time.Now().After(deadline) {
					pending <- n
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
		return f.Sync()
	}})
	st = s

	var wg sync.WaitGroup
	for i := range appends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Append(rec(Started, "s", fmt.Sprintf("h%d", i), 1)); err != nil {
				t.Errorf("Append: %v", err)
			}
		}()
	}
	close(started)
	wg.Wait()
	if n := <-pending; n != appends {
		t.Fatalf("only %d of %d appends were written or queued within 20s", n, appends)
	}
	if got := len(mustReplay(t, s)); got != appends {
		t.Errorf("Replay = %d records, want %d", got, appends)
	}
	// One fsync for the first batch, one for everything queued behind it.
	if n := syncs.Load(); n > 2 {
		t.Errorf("%d appends took %d fsyncs; want the queued appends to share one (2 in all)", appends, n)
	}
}
