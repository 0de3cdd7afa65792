package engine

import "time"

// EventType says what happened.
type EventType string

const (
	EventRunStart    EventType = "run-start"
	EventTaskStart   EventType = "task-start"
	EventTaskRetry   EventType = "task-retry"
	EventTaskDone    EventType = "task-done"
	EventTaskCached  EventType = "task-unchanged"
	EventTaskSkipped EventType = "task-skipped"
	EventTaskFailed  EventType = "task-failed"
	EventRunEnd      EventType = "run-end"
)

// Event is one thing the engine reports while it runs. Events are
// delivered one at a time, in order, from the engine's goroutines.
type Event struct {
	Time     time.Time     `json:"time"`
	Type     EventType     `json:"type"`
	Task     string        `json:"task,omitempty"`
	Step     string        `json:"step,omitempty"`
	Host     string        `json:"host,omitempty"`
	Attempt  int           `json:"attempt,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
	Error    string        `json:"error,omitempty"`
	Note     string        `json:"note,omitempty"`
	LogPath  string        `json:"log,omitempty"`
	// Total is the number of tasks (run-start only).
	Total int `json:"total,omitempty"`
	// Result is set on run-end.
	Result *Result `json:"-"`
}
