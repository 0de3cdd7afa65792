package journal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// killChildEnv makes the test binary act as a run that appends until it is
// killed (see TestMain).
const killChildEnv = "SEALFLOW_JOURNAL_TEST_APPEND_UNTIL_KILLED"

const (
	killWriters = 4
	killReady   = 50 // appends per writer before the child says "ready"
	killMax     = 50_000
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		os.Exit(appendUntilKilled(dir))
	}
	os.Exit(m.Run())
}

// appendUntilKilled appends from several goroutines in a bounded loop,
// printing "ready" once every writer has had killReady appends return.
func appendUntilKilled(dir string) int {
	s, err := Open(dir, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var (
		wg    sync.WaitGroup
		ready sync.WaitGroup
		fails atomic.Int64
	)
	pad := strings.Repeat("p", 200)
	ready.Add(killWriters)
	for w := range killWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= killMax; i++ {
				r := Record{Event: Done, Run: 1, Step: "loop", Host: fmt.Sprintf("h%d", w), Attempt: i,
					Outputs: map[string]string{"pad": pad}, Secrets: map[string]string{"s": fmt.Sprint(i)}}
				if err := s.Append(r); err != nil {
					fmt.Fprintln(os.Stderr, err)
					fails.Add(1)
					if i <= killReady {
						ready.Done()
					}
					return
				}
				if i == killReady {
					ready.Done()
				}
			}
		}()
	}
	ready.Wait()
	fmt.Println("ready")
	wg.Wait()
	if fails.Load() > 0 {
		return 1
	}
	// Bounded: the test kills the child long before this.
	time.Sleep(2 * time.Minute)
	return 0
}

func TestKilledWhileAppending(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer func() { _ = cmd.Process.Kill() }()
	readyc := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() && sc.Text() == "ready" {
			readyc <- nil
			return
		}
		readyc <- fmt.Errorf("child did not say ready (%v)", sc.Err())
	}()
	select {
	case err := <-readyc:
		if err != nil {
			t.Fatalf("%v; stderr: %s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("child not ready after 60s; stderr: %s", stderr.String())
	}

	// While the child runs, the directory is locked by it.
	_, err = Open(dir, Options{})
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) || le.PID != pid {
		t.Errorf("Open while the child runs = %v, want ErrLocked naming pid %d", err, pid)
	}

	// Let it get well into appending, then kill it mid-flight.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if fi, err := os.Stat(filepath.Join(dir, "journal")); err == nil && fi.Size() > 1<<20 {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatalf("child exited cleanly before it was killed; stderr: %s", stderr.String())
	}

	s, logs := openT(t, dir, Options{})
	if want := fmt.Sprintf("taking over stale lock of pid %d", pid); !logs.find(want) {
		t.Errorf("Open after the kill logged %q, want %q", logs.all(), want)
	}
	recs, err := s.Replay()
	if err != nil {
		t.Fatalf("Replay after the kill: %v", err)
	}
	// A prefix of each writer's appends: 1..n with no gap, at least the
	// ones that had returned before "ready".
	count := map[string]int{}
	for _, r := range recs {
		count[r.Host]++
		if r.Attempt != count[r.Host] || r.Secrets["s"] != fmt.Sprint(r.Attempt) {
			t.Fatalf("record %s attempt %d (secret %q) follows %d records of that host: not a prefix",
				r.Host, r.Attempt, r.Secrets["s"], count[r.Host]-1)
		}
	}
	for w := range killWriters {
		if h := fmt.Sprintf("h%d", w); count[h] < killReady {
			t.Errorf("host %s has %d records, want at least the %d appends that returned", h, count[h], killReady)
		}
	}
	t.Logf("replayed %d records after SIGKILL; open logged %q", len(recs), logs.all())

	after := Record{Event: RunStarted, Run: 2, Note: "resume"}
	mustAppend(t, s, after)
	recs2 := mustReplay(t, s)
	if len(recs2) != len(recs)+1 || recs2[len(recs2)-1].Note != "resume" {
		t.Errorf("after one more append Replay has %d records (last %+v), want %d ending with the resume record",
			len(recs2), recs2[len(recs2)-1], len(recs)+1)
	}
}
