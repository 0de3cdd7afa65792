package app

import (
	"os"

	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/plans"
)

// checkLocalFiles refuses a run whose first tasks would read a file of
// this machine that is not there (copy's or distribute's src, a
// --set pkg with a typo): before any host is touched, exit 2, rather than
// a task failure once hosts are half done. Only steps without needs are
// checked (a later step may read what an earlier one makes), and only
// their tasks not done in records (a resume needs no file sent already).
func checkLocalFiles(p *plans.Plan, records []journal.Record) error {
	done := map[[2]string]bool{}
	for _, r := range records {
		if r.Step != "" {
			done[[2]string{r.Step, r.Host}] = r.Event == journal.Done
		}
	}
	for _, s := range p.Steps {
		if len(s.Needs) > 0 || s.KindDef == nil || len(s.KindDef.LocalFiles) == 0 {
			continue
		}
		for _, h := range s.Targets {
			if done[[2]string{s.ID, h.Name}] {
				continue
			}
			env := p.NewEnv(h)
			if ok, err := s.EvalWhen(env); err != nil || !ok {
				continue // skipped, or known at run time only
			}
			params, err := s.Render(env)
			if err != nil {
				continue
			}
			for _, name := range s.KindDef.LocalFiles {
				path, _ := params[name].(string)
				if path == "" {
					continue
				}
				if _, err := os.Stat(path); err != nil {
					return Invalidf("%s: step %q: with.%s: %s is not on this machine (sealflow reads it here to send it to %s): %v",
						s.Pos, s.ID, name, path, h.Name, errorOnly(err))
				}
			}
		}
	}
	return nil
}

// errorOnly is an *os.PathError's reason without the path said already.
func errorOnly(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
