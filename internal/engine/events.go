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
	// EventTaskWarning says something a user must know of a task that
	// does not change its outcome (Note): its log could not be written in
	// full.
	EventTaskWarning EventType = "task-warning"
	EventRunEnd      EventType = "run-end"
	// EventTransfer is an upload's progress (Transfer is set); a task
	// reports at most about five a second, and one with End at its end.
	EventTransfer EventType = "transfer"
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
	// Transfer is set on transfer events.
	Transfer *Transfer `json:"transfer,omitempty"`
	// Result is set on run-end.
	Result *Result `json:"-"`
}

// Transfer is the progress of one upload of a task.
type Transfer struct {
	// Name is the file's name (its last path element).
	Name string `json:"name"`
	// Dest is where it goes on the host.
	Dest string `json:"dest"`
	// Bytes is how far into the file the transfer is; Total its size.
	Bytes int64 `json:"bytes"`
	Total int64 `json:"total"`
	// End is set on the transfer's last event (it succeeded); Sent is then
	// how many bytes were read to send it (0 when the host had the file).
	End  bool  `json:"end,omitempty"`
	Sent int64 `json:"sent,omitempty"`
}
