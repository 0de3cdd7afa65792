package journal

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// logLines collects Options.Log messages from any goroutine.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) log(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, msg)
}

func (l *logLines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func (l *logLines) find(sub string) bool {
	for _, m := range l.all() {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

var testStart = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)

// fixedClock returns a clock that advances one second per call.
func fixedClock() func() time.Time {
	var mu sync.Mutex
	t := testStart
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

// openT opens dir with a fixed clock and a log collector, and closes it at
// the end of the test.
func openT(t *testing.T, dir string, opts Options) (*State, *logLines) {
	t.Helper()
	logs := &logLines{}
	if opts.Now == nil {
		opts.Now = fixedClock()
	}
	opts.Log = logs.log
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, logs
}

func mustAppend(t *testing.T, s *State, recs ...Record) {
	t.Helper()
	for _, r := range recs {
		if err := s.Append(r); err != nil {
			t.Fatalf("Append(%+v): %v", r, err)
		}
	}
}

func mustReplay(t *testing.T, s interface{ Replay() ([]Record, error) }) []Record {
	t.Helper()
	recs, err := s.Replay()
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return recs
}

func mustClose(t *testing.T, s *State) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func readJournal(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, journalFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeJournal(t *testing.T, dir string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, journalFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// rec is a small task record.
func rec(e Event, step, host string, attempt int) Record {
	return Record{
		Time:    testStart.Add(time.Duration(attempt) * time.Minute),
		Event:   e,
		Run:     1,
		Step:    step,
		Host:    host,
		Attempt: attempt,
	}
}
