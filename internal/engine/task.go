package engine

import (
	"fmt"
	"strings"
	"time"

	"github.com/sealflow/sealflow/plans"
	"github.com/sealflow/sealflow/steps"
)

// TaskID names a task: one step on one host.
type TaskID struct {
	Step string
	Host string
}

func (t TaskID) String() string { return t.Step + "@" + t.Host }

// ParseTaskID reads STEP@HOST.
func ParseTaskID(s string) (TaskID, error) {
	step, host, ok := strings.Cut(s, "@")
	if !ok || step == "" || host == "" {
		return TaskID{}, fmt.Errorf("%q is not STEP@HOST", s)
	}
	return TaskID{Step: step, Host: host}, nil
}

// Status is how a task ended in a run.
type Status string

const (
	StatusDone      Status = "done"      // ran and succeeded in this run
	StatusCached    Status = "unchanged" // done earlier (journal) or found done by the step's check
	StatusSkipped   Status = "skipped"   // `when` was false, or --skip
	StatusFailed    Status = "failed"
	StatusNotRun    Status = "not run"
	StatusCancelled Status = "interrupted"
)

// task is one (step, host) of a run.
type task struct {
	id   TaskID
	step *plans.Step
	host *plans.Host
	kind *steps.Kind
	// upstream lists, per direct need, the tasks this one waits for.
	upstream []TaskID
	n        int // index in the run's tasks and results
	// done is set when the task has finished (finished), under the
	// runner's mu.
	done     doneTask
	finished bool
}

// TaskResult is what the summary shows of a task.
type TaskResult struct {
	ID       TaskID
	Status   Status
	Attempts int
	Duration time.Duration
	Err      error
	// LogPath is where the log of a failed task is ("" for the others:
	// at thousands of tasks the paths of the ones that did not fail
	// were memory no summary reads).
	LogPath string
	// Warnings say what went wrong beside the task's outcome (its log is
	// incomplete).
	Warnings []string
}
