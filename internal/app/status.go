package app

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/sealflow/sealflow/internal/engine"
	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/steps"
)

// StatusOptions are the options of `sealflow status`.
type StatusOptions struct {
	StateDir string
}

// taskState is the last known state of a task in a journal.
type taskState struct {
	state    string
	attempts int
	duration time.Duration
	err      string
}

// Status prints one row per task of the saved run: step, host, state,
// attempts and duration. It takes no lock and writes nothing.
func Status(o StatusOptions, io IO) error {
	dir := o.StateDir
	if dir == "" {
		dir = journal.DefaultDir
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return Invalidf("no state directory %s: nothing has run here (use --state DIR)", dir)
	}
	rd, err := journal.ReadOnly(dir)
	if err != nil {
		return err
	}
	records, err := rd.Replay()
	if err != nil {
		return err
	}
	states, order := foldStates(records)
	// Tasks of the saved plan that never started are shown as pending.
	if plan, err := loadSaved(rd, steps.Builtin()); err == nil {
		var planOrder []taskKey
		seen := map[taskKey]bool{}
		for _, s := range plan.Steps {
			for _, h := range s.Targets {
				k := taskKey{s.ID, h.Name}
				planOrder = append(planOrder, k)
				seen[k] = true
				if _, ok := states[k]; !ok {
					states[k] = &taskState{state: "pending"}
				}
			}
		}
		for _, k := range order {
			if !seen[k] {
				planOrder = append(planOrder, k)
			}
		}
		order = planOrder
	}
	// Buffered: tabwriter writes every cell and its padding apart, 240,000
	// write calls for a run of 20,000 tasks.
	out := bufio.NewWriter(io.Stdout)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tHOST\tSTATE\tATTEMPTS\tDURATION\t")
	for _, k := range order {
		s := states[k]
		d := ""
		if s.duration > 0 {
			d = s.duration.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t\n", k.step, k.host, s.state, s.attempts, d)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return out.Flush()
}

type taskKey struct{ step, host string }

func foldStates(records []journal.Record) (map[taskKey]*taskState, []taskKey) {
	states := map[taskKey]*taskState{}
	var order []taskKey
	for _, r := range records {
		if r.Step == "" {
			continue
		}
		k := taskKey{r.Step, r.Host}
		s := states[k]
		if s == nil {
			s = &taskState{}
			states[k] = s
			order = append(order, k)
		}
		if r.Attempt > s.attempts {
			s.attempts = r.Attempt
		}
		switch r.Event {
		case journal.Started:
			s.state, s.err = "running or interrupted", ""
		case journal.Done:
			s.state, s.duration = "done", r.Duration
			if r.Note == "skipped by --skip" {
				s.state = "skipped (--skip)"
			}
		case journal.Failed:
			s.state, s.duration, s.err = "failed", r.Duration, r.Error
			switch r.Note {
			case "interrupted":
				s.state = "interrupted"
			case engine.NoteUnknown:
				s.state = "outcome unknown (connection lost)"
			}
		case journal.Skipped:
			s.state = "skipped"
		}
	}
	return states, order
}
