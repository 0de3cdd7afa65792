package ui

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/engine"
)

func events() []engine.Event {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	res := &engine.Result{Tasks: []engine.TaskResult{
		{ID: engine.TaskID{Step: "a", Host: "h1"}, Status: engine.StatusDone},
		{ID: engine.TaskID{Step: "b", Host: "h1"}, Status: engine.StatusFailed, Err: errors.New("exit status 3\nmore"), LogPath: "st/logs/b/h1.log"},
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

func TestPlain(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	s := New(&b, Auto, false)
	for _, ev := range events() {
		s.Event(ev)
	}
	want := `03:04:05.000 run p: 3 tasks
03:04:05.000 start     a@h1
03:04:05.000 done      a@h1 (1.5s)
03:04:05.000 start     b@h1 (attempt 2)
03:04:05.000 FAILED    b@h1 (attempt 2): exit status 3 ...
          log: st/logs/b/h1.log

1 done, 1 failed, 1 not run
failed:
  b@h1: exit status 3 ...
    log: st/logs/b/h1.log
1 tasks did not run because of these failures (or fail-fast); fix the cause, then ` + "`sealflow resume`\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestLiveRedrawsOneStatusLine(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	s := New(&b, Auto, true)
	for _, ev := range events()[:2] {
		s.Event(ev)
	}
	if got := b.String(); !strings.HasSuffix(got, "[0/3] running: a@h1") {
		t.Errorf("live view: %q", got)
	}
	s.Event(events()[2])
	if got := b.String(); !strings.Contains(got, "\r\x1b[Kdone      a@h1 (1.5s)\n") {
		t.Errorf("the status line is not cleared before the next line: %q", got)
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	s := New(&b, JSON, true)
	for _, ev := range events() {
		s.Event(ev)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != len(events()) {
		t.Fatalf("%d lines for %d events", len(lines), len(events()))
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
