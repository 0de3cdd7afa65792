package engine

import (
	"testing"
	"time"

	"github.com/sealflow/sealflow/internal/journal"
)

// The resume rules, one row each: what a run does with a task given what
// the journal says of it, its fingerprint now and the user's flags.
func TestDecideResumeRules(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		in   DecideInput
		want Decision
	}{
		{"never ran", DecideInput{Fingerprint: "f1"}, DecideRun},
		{"never ran, --rerun", DecideInput{Fingerprint: "f1", Rerun: true}, DecideRun},
		{"never ran, --skip", DecideInput{Fingerprint: "f1", Skip: true}, DecideSkip},
		{"done, same fingerprint", DecideInput{Prior: PriorDone, PriorFP: "f1", Fingerprint: "f1"}, DecideUnchanged},
		{"done, fingerprint changed", DecideInput{Prior: PriorDone, PriorFP: "f0", Fingerprint: "f1"}, DecideRerun},
		{"done, fingerprint not known yet", DecideInput{Prior: PriorDone, PriorFP: "f0"}, DecideUnchanged},
		{"done, --rerun", DecideInput{Prior: PriorDone, PriorFP: "f1", Fingerprint: "f1", Rerun: true}, DecideRerun},
		{"done, --skip", DecideInput{Prior: PriorDone, PriorFP: "f1", Fingerprint: "f1", Skip: true}, DecideSkip},
		{"failed", DecideInput{Prior: PriorFailed, Fingerprint: "f1"}, DecideRerun},
		{"failed, --skip", DecideInput{Prior: PriorFailed, Fingerprint: "f1", Skip: true}, DecideSkip},
		{"skipped by when", DecideInput{Prior: PriorSkipped, Fingerprint: "f1"}, DecideRun},
		{"interrupted, not safe", DecideInput{Prior: PriorInterrupted, Fingerprint: "f1"}, DecideAsk},
		{"interrupted, safe to run twice", DecideInput{Prior: PriorInterrupted, Fingerprint: "f1", SafeToRerun: true}, DecideRerun},
		{"interrupted, --rerun", DecideInput{Prior: PriorInterrupted, Rerun: true}, DecideRerun},
		{"interrupted, --skip", DecideInput{Prior: PriorInterrupted, Skip: true}, DecideSkip},
		{"done, same fingerprint, every run", DecideInput{Prior: PriorDone, PriorFP: "f1", Fingerprint: "f1", EveryRun: true}, DecideRerun},
		{"done, not known yet, every run", DecideInput{Prior: PriorDone, PriorFP: "f1", EveryRun: true}, DecideRerun},
		{"done, every run, --skip", DecideInput{Prior: PriorDone, PriorFP: "f1", Fingerprint: "f1", EveryRun: true, Skip: true}, DecideSkip},
	} {
		if got := Decide(c.in); got.Decision != c.want || got.Reason == "" {
			t.Errorf("%s: %v, want %s with a reason", c.name, got, c.want)
		}
	}
}

// The fold types what the records say; Ctrl-C and a crash are both
// interrupted, and a later start forgets an earlier failure.
func TestFoldTypesTaskState(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	rec := func(ev journal.Event, step, note string) journal.Record {
		return journal.Record{Time: at, Event: ev, Step: step, Host: "h", Note: note, Fingerprint: "fp-" + step}
	}
	prior, _ := replay([]journal.Record{
		{Event: journal.RunStarted, Run: 1},
		rec(journal.Started, "a", ""), rec(journal.Done, "a", ""),
		rec(journal.Started, "b", ""), rec(journal.Failed, "b", ""),
		rec(journal.Started, "c", ""), rec(journal.Failed, "c", noteInterrupted),
		rec(journal.Started, "d", ""),
		rec(journal.Skipped, "e", "when is false"),
		rec(journal.Started, "f", ""), rec(journal.Failed, "f", ""), rec(journal.Started, "f", ""),
	})
	want := map[string]PriorState{"a": PriorDone, "b": PriorFailed, "c": PriorInterrupted, "d": PriorInterrupted,
		"e": PriorSkipped, "f": PriorInterrupted, "never": PriorNone}
	for step, st := range want {
		if got := prior[TaskID{Step: step, Host: "h"}].typed(); got != st {
			t.Errorf("%s: %q, want %q", step, got, st)
		}
	}
	if got := prior[TaskID{Step: "a", Host: "h"}].fingerprint(); got != "fp-a" {
		t.Errorf("fingerprint of a done task = %q, want fp-a", got)
	}
}
