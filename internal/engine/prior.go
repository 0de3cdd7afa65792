package engine

import (
	"time"

	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/steps"
)

// prior is what the journal says of a task from earlier runs.
type prior struct {
	state     journal.Event // Started, Done, Failed or Skipped
	cancelled bool          // Failed because the run was interrupted
	unknown   bool          // Failed with an unknown outcome (the connection was lost while it ran)
	fp        string
	outputs   steps.Outputs
	secret    []string // keys of outputs that are secrets
	attempts  int
	started   time.Time
	duration  time.Duration
	err       string
}

// interrupted reports whether the task was left without a known end.
func (p *prior) interrupted() bool {
	return p != nil && (p.state == journal.Started || (p.state == journal.Failed && (p.cancelled || p.unknown)))
}

// fingerprint is the fingerprint the task was done with ("" for none).
func (p *prior) fingerprint() string {
	if p == nil {
		return ""
	}
	return p.fp
}

func (p *prior) secretValues() []string {
	var v []string
	for _, k := range p.secret {
		v = append(v, p.outputs[k])
	}
	return v
}

// Journal notes of a failed task whose end is not known: stopped by
// Ctrl-C, or cut off with its connection while a command ran.
const (
	noteInterrupted = "interrupted"
	noteUnknown     = NoteUnknown
)

// NoteUnknown is the journal note of a task whose command was cut off
// with its connection: resume decides it like an interrupted task.
const NoteUnknown = "outcome unknown: connection lost"

// replay folds journal records into the last known state of each task and
// returns the number of the last run.
func replay(records []journal.Record) (map[TaskID]*prior, int) {
	out := map[TaskID]*prior{}
	runNo := 0
	for _, rec := range records {
		if rec.Event == journal.RunStarted {
			if rec.Run > runNo {
				runNo = rec.Run
			}
			continue
		}
		if rec.Step == "" {
			continue
		}
		id := TaskID{Step: rec.Step, Host: rec.Host}
		p := out[id]
		if p == nil {
			p = &prior{}
			out[id] = p
		}
		if rec.Attempt > p.attempts {
			p.attempts = rec.Attempt
		}
		switch rec.Event {
		case journal.Started:
			p.state, p.cancelled, p.unknown, p.started, p.err = journal.Started, false, false, rec.Time, ""
		case journal.Done:
			p.state, p.fp, p.duration = journal.Done, rec.Fingerprint, rec.Duration
			p.outputs, p.secret = steps.Outputs{}, nil
			for k, v := range rec.Outputs {
				p.outputs[k] = v
			}
			for k, v := range rec.Secrets {
				p.outputs[k] = v
				p.secret = append(p.secret, k)
			}
		case journal.Failed:
			p.state, p.err, p.duration = journal.Failed, rec.Error, rec.Duration
			p.cancelled = rec.Note == noteInterrupted
			p.unknown = rec.Note == noteUnknown
		case journal.Skipped:
			p.state, p.fp, p.outputs, p.secret = journal.Skipped, rec.Fingerprint, nil, nil
		}
	}
	return out, runNo
}
