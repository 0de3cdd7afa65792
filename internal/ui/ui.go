// Package ui shows a run's progress: a live view on a terminal, plain
// timestamped lines otherwise, or one JSON object per event. Everything
// it shows comes from engine events.
package ui

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sealflow/sealflow/internal/engine"
)

// Mode selects the output format.
type Mode string

const (
	Auto  Mode = "auto" // live on a terminal, plain otherwise
	Plain Mode = "plain"
	JSON  Mode = "json"
	Live  Mode = "live"
)

// Sink consumes engine events.
type Sink struct {
	mu      sync.Mutex
	w       io.Writer
	mode    Mode
	running map[string]time.Time
	total   int
	ended   int
	status  bool // a live status line is on screen
}

// New returns a sink writing to w. isTTY decides what Auto means.
func New(w io.Writer, mode Mode, isTTY bool) *Sink {
	if mode == "" || mode == Auto {
		mode = Plain
		if isTTY {
			mode = Live
		}
	}
	return &Sink{w: w, mode: mode, running: map[string]time.Time{}}
}

// Event shows one event.
func (s *Sink) Event(ev engine.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode == JSON {
		s.json(ev)
		return
	}
	switch ev.Type {
	case engine.EventRunStart:
		s.total = ev.Total
		s.line(ev.Time, fmt.Sprintf("run %s: %d tasks", ev.Note, ev.Total))
	case engine.EventTaskStart:
		s.running[ev.Task] = ev.Time
		if s.mode == Plain {
			s.line(ev.Time, fmt.Sprintf("start     %s%s", ev.Task, attempt(ev.Attempt)))
		}
	case engine.EventTaskRetry:
		delete(s.running, ev.Task)
		s.line(ev.Time, fmt.Sprintf("retry     %s%s: %s (%s)", ev.Task, attempt(ev.Attempt), oneLine(ev.Error), ev.Note))
	case engine.EventTaskDone:
		s.end(ev, fmt.Sprintf("done      %s (%s)", ev.Task, round(ev.Duration)))
	case engine.EventTaskCached:
		s.end(ev, fmt.Sprintf("unchanged %s (%s)", ev.Task, ev.Note))
	case engine.EventTaskSkipped:
		s.end(ev, fmt.Sprintf("skipped   %s (%s)", ev.Task, ev.Note))
	case engine.EventTaskFailed:
		msg := fmt.Sprintf("FAILED    %s%s: %s", ev.Task, attempt(ev.Attempt), oneLine(ev.Error))
		if ev.LogPath != "" {
			msg += "\n          log: " + ev.LogPath
		}
		s.end(ev, msg)
	case engine.EventRunEnd:
		s.clearStatus()
		if ev.Result != nil {
			Summary(s.w, ev.Result)
		}
		return
	}
	s.drawStatus()
}

func (s *Sink) end(ev engine.Event, msg string) {
	delete(s.running, ev.Task)
	s.ended++
	s.line(ev.Time, msg)
}

func (s *Sink) line(t time.Time, msg string) {
	s.clearStatus()
	if s.mode == Live {
		fmt.Fprintln(s.w, msg)
		return
	}
	fmt.Fprintf(s.w, "%s %s\n", t.Format("15:04:05.000"), msg)
}

func (s *Sink) clearStatus() {
	if s.status {
		fmt.Fprint(s.w, "\r\x1b[K")
		s.status = false
	}
}

// drawStatus shows, on a terminal, one line with progress and the tasks
// running longest.
func (s *Sink) drawStatus() {
	if s.mode != Live || len(s.running) == 0 {
		return
	}
	names := make([]string, 0, len(s.running))
	for n := range s.running {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return s.running[names[i]].Before(s.running[names[j]]) })
	if len(names) > 4 {
		names = append(names[:4], fmt.Sprintf("+%d", len(names)-4))
	}
	fmt.Fprintf(s.w, "[%d/%d] running: %s", s.ended, s.total, strings.Join(names, ", "))
	s.status = true
}

func (s *Sink) json(ev engine.Event) {
	out := struct {
		engine.Event
		Summary *summary `json:"summary,omitempty"`
	}{Event: ev}
	if ev.Result != nil {
		out.Summary = summarize(ev.Result)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return
	}
	s.w.Write(append(b, '\n'))
}

type summary struct {
	OK          bool           `json:"ok"`
	Counts      map[string]int `json:"counts"`
	Failures    []failure      `json:"failures,omitempty"`
	Interrupted bool           `json:"interrupted,omitempty"`
}

type failure struct {
	Task  string `json:"task"`
	Error string `json:"error"`
	Log   string `json:"log"`
}

func summarize(r *engine.Result) *summary {
	s := &summary{OK: r.OK(), Counts: map[string]int{}, Interrupted: r.Interrupted}
	for _, t := range r.Tasks {
		s.Counts[string(t.Status)]++
	}
	for _, t := range r.Failures() {
		s.Failures = append(s.Failures, failure{Task: t.ID.String(), Error: errString(t.Err), Log: t.LogPath})
	}
	return s
}

// Summary prints the end of a run: counts, then each failure (root causes
// only: tasks that did not run because of a failure are only counted).
func Summary(w io.Writer, r *engine.Result) {
	order := []engine.Status{engine.StatusDone, engine.StatusCached, engine.StatusSkipped, engine.StatusFailed, engine.StatusCancelled, engine.StatusNotRun}
	var parts []string
	for _, st := range order {
		if n := r.Count(st); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
		}
	}
	fmt.Fprintf(w, "\n%s\n", strings.Join(parts, ", "))
	if f := r.Failures(); len(f) > 0 {
		fmt.Fprintln(w, "failed:")
		for _, t := range f {
			fmt.Fprintf(w, "  %s: %s\n    log: %s\n", t.ID, oneLine(errString(t.Err)), t.LogPath)
		}
		if n := r.Count(engine.StatusNotRun); n > 0 {
			fmt.Fprintf(w, "%d tasks did not run because of these failures (or fail-fast); fix the cause, then `sealflow resume`\n", n)
		}
	}
	if r.Interrupted {
		fmt.Fprintln(w, "interrupted: `sealflow resume` continues where this run stopped")
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func attempt(n int) string {
	if n <= 1 {
		return ""
	}
	return fmt.Sprintf(" (attempt %d)", n)
}

func round(d time.Duration) time.Duration {
	switch {
	case d > time.Minute:
		return d.Round(time.Second)
	case d > time.Second:
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}
