package engine

import "github.com/sealflow/sealflow/internal/journal"

// PriorState is what the journal says of a task from earlier runs.
type PriorState string

const (
	PriorNone        PriorState = ""            // never started
	PriorDone        PriorState = "done"        // finished (or --skip)
	PriorFailed      PriorState = "failed"      // its last attempt failed
	PriorInterrupted PriorState = "interrupted" // started with no end, or stopped by Ctrl-C
	PriorSkipped     PriorState = "skipped"     // its `when` was false
)

// typed types the fold of the task's records.
func (p *prior) typed() PriorState {
	switch {
	case p == nil:
		return PriorNone
	case p.interrupted():
		return PriorInterrupted
	case p.state == journal.Done:
		return PriorDone
	case p.state == journal.Failed:
		return PriorFailed
	case p.state == journal.Skipped:
		return PriorSkipped
	}
	return PriorNone
}

// Decision is what a run does with a task whose `when` holds.
type Decision string

const (
	DecideRun       Decision = "run"       // never ran
	DecideUnchanged Decision = "unchanged" // done earlier, same fingerprint: its outputs are restored
	DecideRerun     Decision = "re-run"    // ran earlier and runs again
	DecideSkip      Decision = "skip"      // --skip: marked done without running
	DecideAsk       Decision = "ask"       // interrupted, not safe to run twice: the user decides
)

// DecideInput is what a decision depends on.
type DecideInput struct {
	Prior PriorState
	// PriorFP is the fingerprint the task was done with; Fingerprint is
	// its fingerprint now, "" when it cannot be known yet (`sealflow
	// plan`, before the tasks it needs have run).
	PriorFP, Fingerprint string
	Rerun, Skip          bool // --rerun, --skip
	// SafeToRerun: the kind may run twice or the step checks whether its
	// work is done (steps.SafeToRerun).
	SafeToRerun bool
	// EveryRun: the kind runs again on every run (steps.Kind.EveryRun).
	EveryRun bool
}

// Verdict is a decision and why, in words for `sealflow plan`.
type Verdict struct {
	Decision Decision
	Reason   string
}

// Decide applies the resume rules to one task. It is pure: the engine's
// walk and `sealflow plan` both call it, so plan shows what a run does.
func Decide(in DecideInput) Verdict {
	switch {
	case in.Skip:
		return Verdict{DecideSkip, "--skip"}
	case in.Prior == PriorNone:
		return Verdict{DecideRun, "not run before"}
	case in.Rerun:
		return Verdict{DecideRerun, "--rerun"}
	}
	switch in.Prior {
	case PriorDone:
		if in.EveryRun {
			return Verdict{DecideRerun, "runs on every run (what it makes expires)"}
		}
		switch in.Fingerprint {
		case "":
			return Verdict{DecideUnchanged, "done earlier; runs again if what it needs changes"}
		case in.PriorFP:
			return Verdict{DecideUnchanged, "done earlier, same fingerprint"}
		}
		return Verdict{DecideRerun, "changed since it was done (parameters, host or what it needs)"}
	case PriorFailed:
		return Verdict{DecideRerun, "failed earlier"}
	case PriorInterrupted:
		if in.SafeToRerun {
			return Verdict{DecideRerun, "interrupted earlier; safe to run again"}
		}
		return Verdict{DecideAsk, "interrupted earlier and not safe to run twice: resume with --rerun or --skip"}
	}
	return Verdict{DecideRun, "skipped earlier (when was false)"}
}
