package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sealflow/sealflow/internal/engine"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func events() []engine.Event {
	res := &engine.Result{Tasks: []engine.TaskResult{
		{ID: engine.TaskID{Step: "a", Host: "h1"}, Status: engine.StatusDone},
		{ID: engine.TaskID{Step: "b", Host: "h1"}, Status: engine.StatusFailed, Err: hintErr{"exit status 3\nmore"}, LogPath: "st/logs/b/h1.log"},
		{ID: engine.TaskID{Step: "c", Host: "h1"}, Status: engine.StatusNotRun},
	}}
	return []engine.Event{
		{Time: t0, Type: engine.EventRunStart, Total: 3, Note: "p"},
		{Time: t0, Type: engine.EventTaskStart, Task: "a@h1", Attempt: 1},
		{Time: t0, Type: engine.EventTaskDone, Task: "a@h1", Duration: 1500 * time.Millisecond},
		{Time: t0, Type: engine.EventTaskStart, Task: "b@h1", Attempt: 2},
		{Time: t0, Type: engine.EventTaskFailed, Task: "b@h1", Attempt: 2, Error: "exit status 3\nmore", LogPath: "st/logs/b/h1.log"},
		{Time: t0, Type: engine.EventRunEnd, Result: res},
	}
}

// hintErr is an error with a hint, as sshconn's and the engine's are.
type hintErr struct{ msg string }

func (e hintErr) Error() string { return e.msg }
func (e hintErr) Hint() string  { return "see what the command printed" }

func TestPlain(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	s := New(&b, Options{TTY: false, Color: true})
	for _, ev := range events() {
		s.Event(ev)
	}
	s.Close()
	want := `03:04:05.000 run p: 3 tasks
03:04:05.000 start     a@h1
03:04:05.000 done      a@h1 (1.5s)
03:04:05.000 start     b@h1 (attempt 2)
03:04:05.000 FAILED    b@h1 (attempt 2): exit status 3 ...
          log: st/logs/b/h1.log

1 done, 1 failed, 1 not run
failed:
  b@h1: exit status 3 ...
    hint: see what the command printed
    log: st/logs/b/h1.log
1 tasks did not run because of these failures (or fail-fast); fix the cause, then ` + "`sealflow resume`\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("plain output (-want +got):\n%s", diff)
	}
}

// screen is a small terminal: what a person sees after the bytes the live
// view wrote. It wraps at its width, as a terminal does.
type screen struct {
	w     int
	lines [][]rune
	row   int
	col   int
}

var csi = regexp.MustCompile(`^\x1b\[([0-9;]*)([A-Za-z])`)

func (s *screen) write(t *testing.T, text string) {
	t.Helper()
	for len(text) > 0 {
		if m := csi.FindStringSubmatch(text); m != nil {
			n := 1
			fmt.Sscan(m[1], &n)
			switch m[2] {
			case "A":
				s.row = max(s.row-n, 0)
			case "J":
				s.grow()
				s.lines[s.row] = s.lines[s.row][:min(s.col, len(s.lines[s.row]))]
				s.lines = s.lines[:s.row+1]
			case "K":
				s.grow()
				s.lines[s.row] = s.lines[s.row][:min(s.col, len(s.lines[s.row]))]
			case "m":
			default:
				t.Fatalf("escape sequence %q the live view should not need", m[0])
			}
			text = text[len(m[0]):]
			continue
		}
		r := []rune(text)[0]
		text = text[len(string(r)):]
		switch r {
		case '\r':
			s.col = 0
		case '\n':
			s.row, s.col = s.row+1, 0
		case '\x1b':
			t.Fatalf("stray escape at %q", text)
		default:
			if s.col == s.w {
				s.row, s.col = s.row+1, 0
			}
			s.grow()
			for len(s.lines[s.row]) <= s.col {
				s.lines[s.row] = append(s.lines[s.row], ' ')
			}
			s.lines[s.row][s.col] = r
			s.col++
		}
	}
}

func (s *screen) grow() {
	for len(s.lines) <= s.row {
		s.lines = append(s.lines, nil)
	}
}

func (s *screen) String() string {
	var out []string
	for _, l := range s.lines {
		out = append(out, strings.TrimRight(string(l), " "))
	}
	return strings.TrimRight(strings.Join(out, "\n"), "\n")
}

// term is a writer that feeds a screen.
type term struct {
	t *testing.T
	s *screen
}

func (w term) Write(p []byte) (int, error) { w.s.write(w.t, string(p)); return len(p), nil }

func TestLiveScreen(t *testing.T) {
	t.Parallel()
	for _, width := range []int{120, 40} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			t.Parallel()
			scr := &screen{w: width}
			now := t0
			s := New(term{t, scr}, Options{TTY: true, Size: func() (int, int) { return width, 40 }, Now: func() time.Time { return now }, Refresh: -1})
			s.Event(engine.Event{Time: now, Type: engine.EventRunStart, Total: 31, Note: "many"})
			for i := range 30 {
				now = t0.Add(time.Duration(i) * time.Second)
				s.Event(engine.Event{Time: now, Type: engine.EventTaskStart, Task: fmt.Sprintf("a-step-with-a-long-name@host-%02d", i), Attempt: 1})
			}
			for i := range 3 {
				s.Event(engine.Event{Time: now, Type: engine.EventTaskDone, Task: fmt.Sprintf("a-step-with-a-long-name@host-%02d", i), Duration: time.Second})
			}
			s.Event(engine.Event{Time: now, Type: engine.EventTaskFailed, Task: "a-step-with-a-long-name@host-03", Error: "exit status 1"})
			now = now.Add(10 * time.Second)
			s.Redraw()
			got := scr.String()
			for _, l := range strings.Split(got, "\n") {
				// Finished lines wrap; the live rows are cut (checked below).
				if n := len([]rune(l)); n > width {
					t.Errorf("a line of %d columns on a %d-column terminal: %q", n, width, l)
				}
			}
			if n := strings.Count(got, "done, "); n != 1 {
				t.Errorf("%d headers on the screen, want 1:\n%s", n, got)
			}
			lines := strings.Split(got, "\n")
			want := []string{
				"run many: 31 tasks",
				"done      a-step-with-a-long-name@host-00 (1s)",
				"done      a-step-with-a-long-name@host-01 (1s)",
				"done      a-step-with-a-long-name@host-02 (1s)",
				"FAILED    a-step-with-a-long-name@host-03: exit status 1",
				"3/31 done, 1 failed, 26 running  39s",
				"     35s  a-step-with-a-long-name@host-04",
				"     34s  a-step-with-a-long-name@host-05",
				"     33s  a-step-with-a-long-name@host-06",
				"     32s  a-step-with-a-long-name@host-07",
				"     31s  a-step-with-a-long-name@host-08",
				"  +21 more",
			}
			if width == 40 {
				// Cut in the middle: the hosts stay apart.
				for i := 6; i <= 10; i++ {
					want[i] = fmt.Sprintf("     %ds  a-step-with-a-…g-name@host-%02d", 41-i, i-2)
				}
			}
			if width == 120 {
				if diff := cmp.Diff(want, lines); diff != "" {
					t.Errorf("screen (-want +got):\n%s", diff)
				}
			} else if diff := cmp.Diff(want[len(want)-7:], lines[len(lines)-7:]); diff != "" {
				t.Errorf("live rows (-want +got):\n%s", diff)
			}
			// The end clears the block and leaves the summary.
			s.Event(engine.Event{Time: now, Type: engine.EventRunEnd, Result: &engine.Result{Tasks: []engine.TaskResult{{Status: engine.StatusDone}}}})
			s.Close()
			got = scr.String()
			if strings.Contains(got, "running") || !strings.HasSuffix(got, "\n1 done") {
				t.Errorf("after the run:\n%s", got)
			}
		})
	}
}

func TestLiveElapsedMovesOn(t *testing.T) {
	t.Parallel()
	scr := &screen{w: 80}
	now := t0
	s := New(term{t, scr}, Options{TTY: true, Now: func() time.Time { return now }, Refresh: -1})
	s.Event(engine.Event{Time: now, Type: engine.EventRunStart, Total: 1, Note: "p"})
	s.Event(engine.Event{Time: now, Type: engine.EventTaskStart, Task: "a@h"})
	for _, d := range []time.Duration{time.Second, 75 * time.Second} {
		now = t0.Add(d)
		s.Redraw()
		want := fmt.Sprintf("run p: 1 tasks\n0/1 done, 0 failed, 1 running  %s\n  %6s  a@h", clock(d), clock(d))
		if got := scr.String(); got != want {
			t.Errorf("after %s:\n%s\nwant:\n%s", d, got, want)
		}
	}
}

func TestLiveTransferAndInterrupt(t *testing.T) {
	t.Parallel()
	scr := &screen{w: 100}
	now := t0
	s := New(term{t, scr}, Options{TTY: true, Now: func() time.Time { return now }, Refresh: -1})
	s.Event(engine.Event{Time: now, Type: engine.EventRunStart, Total: 2, Note: "p"})
	s.Event(engine.Event{Time: now, Type: engine.EventTaskStart, Task: "pkg@h1"})
	s.Event(engine.Event{Time: now, Type: engine.EventTaskStart, Task: "pkg@h2"})
	const mib = 1 << 20
	xfer := func(task string, d time.Duration, n int64, end bool) {
		now = t0.Add(d)
		s.Event(engine.Event{Time: now, Type: engine.EventTransfer, Task: task, Transfer: &engine.Transfer{Name: "kube.tgz", Dest: "/root/kube.tgz", Bytes: n, Total: 100 * mib, End: end, Sent: n}})
	}
	xfer("pkg@h1", 0, 0, false)
	xfer("pkg@h1", 4*time.Second, 40*mib, false)
	if got := scr.String(); !strings.Contains(got, "      4s  pkg@h1  upload 40% 40.0/100.0 MiB 10.0 MiB/s ETA 6s") {
		t.Errorf("no upload progress in the task's row:\n%s", got)
	}
	xfer("pkg@h1", 10*time.Second, 100*mib, true)
	if got := scr.String(); !strings.Contains(got, "uploaded  pkg@h1: kube.tgz, 100.0 MiB in 10s (10.0 MiB/s)") {
		t.Errorf("no line for the finished upload:\n%s", got)
	}
	s.Interrupt()
	if got := scr.String(); !strings.Contains(got, "interrupted: cancelling 2 running task(s): pkg@h1, pkg@h2\ncancelling (Ctrl-C): 0/2 done") {
		t.Errorf("Ctrl-C does not say what is cancelled:\n%s", got)
	}
}

func TestPlainTransferLines(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	s := New(&b, Options{Mode: Plain})
	s.Event(engine.Event{Time: t0, Type: engine.EventTaskStart, Task: "c@h"})
	for i := int64(0); i <= 100; i += 3 {
		s.Event(engine.Event{Time: t0.Add(time.Duration(i) * 100 * time.Millisecond), Type: engine.EventTransfer, Task: "c@h", Transfer: &engine.Transfer{Name: "f", Bytes: i * 1000, Total: 100_000}})
	}
	s.Event(engine.Event{Time: t0.Add(10 * time.Second), Type: engine.EventTransfer, Task: "c@h", Transfer: &engine.Transfer{Name: "f", Bytes: 100_000, Total: 100_000, End: true, Sent: 100_000}})
	pct := regexp.MustCompile(` (\d+)% `)
	var steps []string
	for _, l := range strings.Split(b.String(), "\n") {
		if m := pct.FindStringSubmatch(l); m != nil {
			steps = append(steps, m[1])
		}
	}
	if diff := cmp.Diff([]string{"12", "21", "30", "42", "51", "60", "72", "81", "90"}, steps); diff != "" {
		t.Errorf("a line per 10%% (-want +got):\n%s\n%s", diff, b.String())
	}
	if !strings.Contains(b.String(), "uploaded  c@h: f, 97.7 KiB in 10s (9.8 KiB/s)\n") {
		t.Errorf("no line for the finished upload:\n%s", b.String())
	}
}

func TestNoColor(t *testing.T) {
	t.Parallel()
	sgr := regexp.MustCompile(`\x1b\[[0-9;]*m`)
	for _, color := range []bool{true, false} {
		var b bytes.Buffer
		s := New(&b, Options{TTY: true, Color: color, Refresh: -1})
		for _, ev := range events() {
			s.Event(ev)
		}
		s.Close()
		if got := sgr.MatchString(b.String()); got != color {
			t.Errorf("Color %v: colour codes in the output: %v\n%q", color, got, b.String())
		}
		if !strings.Contains(b.String(), "\x1b[J") {
			t.Errorf("Color %v: the live view no longer redraws in place: %q", color, b.String())
		}
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	s := New(&b, Options{Mode: JSON, TTY: true})
	evs := events()
	evs = append(evs[:4:4], append([]engine.Event{{Time: t0, Type: engine.EventTransfer, Task: "b@h1", Transfer: &engine.Transfer{Name: "f", Dest: "/f", Bytes: 5, Total: 10}}}, evs[4:]...)...)
	for _, ev := range evs {
		s.Event(ev)
	}
	s.Interrupt()
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != len(evs) {
		t.Fatalf("%d lines for %d events:\n%s", len(lines), len(evs), b.String())
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, `{"version":1,"time":"2026-01-02T03:04:05Z","type":"`) {
			t.Errorf("an event without the schema version first: %s", l)
		}
	}
	if want := `{"version":1,"time":"2026-01-02T03:04:05Z","type":"transfer","task":"b@h1","transfer":{"name":"f","dest":"/f","bytes":5,"total":10}}`; lines[4] != want {
		t.Errorf("transfer event:\n%s\nwant\n%s", lines[4], want)
	}
	var last struct {
		Type    string `json:"type"`
		Summary struct {
			OK       bool           `json:"ok"`
			Counts   map[string]int `json:"counts"`
			Failures []struct{ Task, Log string }
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if last.Type != "run-end" || last.Summary.OK || last.Summary.Counts["failed"] != 1 || last.Summary.Failures[0].Task != "b@h1" {
		t.Errorf("run-end: %+v", last)
	}
}

func TestJSONInterrupt(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	s := New(&b, Options{Mode: JSON, Now: func() time.Time { return t0 }})
	s.Event(engine.Event{Time: t0, Type: engine.EventTaskStart, Task: "a@h"})
	s.Interrupt()
	want := `{"version":1,"time":"2026-01-02T03:04:05Z","type":"interrupt","running":["a@h"]}`
	if got := strings.Split(strings.TrimSpace(b.String()), "\n")[1]; got != want {
		t.Errorf("interrupt event:\n%s\nwant\n%s", got, want)
	}
}

// TestLiveTransferNarrow: on a narrow terminal an upload's row keeps the
// percentage, rate and ETA and leaves the amounts out.
func TestLiveTransferNarrow(t *testing.T) {
	t.Parallel()
	scr := &screen{w: 52}
	now := t0
	s := New(term{t, scr}, Options{TTY: true, Size: func() (int, int) { return 52, 24 }, Now: func() time.Time { return now }, Refresh: -1})
	s.Event(engine.Event{Time: now, Type: engine.EventTaskStart, Task: "distribute-package@master-1"})
	for _, n := range []int64{0, 40 << 20} {
		s.Event(engine.Event{Time: now, Type: engine.EventTransfer, Task: "distribute-package@master-1", Transfer: &engine.Transfer{Name: "kube.tgz", Bytes: n, Total: 100 << 20}})
		now = now.Add(4 * time.Second)
	}
	if got, want := scr.String(), "      4s  distr…ter-1  upload 40% 10.0 MiB/s ETA 6s"; !strings.HasSuffix(got, want) {
		t.Errorf("narrow upload row:\n%s\nwant it to end with\n%s", got, want)
	}
}

// TestLiveAbove: a warning printed while the live view is on the terminal
// shows above it, and the view stays whole below.
func TestLiveAbove(t *testing.T) {
	t.Parallel()
	scr := &screen{w: 80}
	s := New(term{t, scr}, Options{TTY: true, Now: func() time.Time { return t0 }, Refresh: -1})
	s.Event(engine.Event{Time: t0, Type: engine.EventRunStart, Total: 2, Note: "p"})
	s.Event(engine.Event{Time: t0, Type: engine.EventTaskStart, Task: "a@h"})
	fmt.Fprintln(s.Above(term{t, scr}), "warning: added the host key of h")
	s.Event(engine.Event{Time: t0, Type: engine.EventTaskStart, Task: "b@h"})
	want := "run p: 2 tasks\nwarning: added the host key of h\n0/2 done, 0 failed, 2 running  0s\n      0s  a@h\n      0s  b@h"
	if got := scr.String(); got != want {
		t.Errorf("screen:\n%s\nwant:\n%s", got, want)
	}
	var b bytes.Buffer
	if w := New(&b, Options{Mode: Plain}).Above(&b); w != &b {
		t.Errorf("outside the live view Above wraps the writer")
	}
}
