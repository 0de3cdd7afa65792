package app

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sealflow/sealflow/internal/engine"
	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/internal/report"
	"github.com/sealflow/sealflow/plans"
	"github.com/sealflow/sealflow/steps"
)

// ReportOptions are the options of `sealflow report`.
type ReportOptions struct {
	StateDir string
	// Output is the HTML file to write ("-": standard output).
	Output string
	Now    func() time.Time
}

// DefaultReportFile is where `sealflow report` writes without -o.
const DefaultReportFile = "run.html"

// Report writes the HTML report of the run in the state directory. It
// takes no lock and writes nothing there, so it works during a run too.
func Report(o ReportOptions, io IO) error {
	dir := o.StateDir
	if dir == "" {
		dir = journal.DefaultDir
	}
	out := o.Output
	if out == "" {
		out = DefaultReportFile
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	if fi, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return Invalidf("no state directory %s: nothing has run here; run a plan first (sealflow run PLAN) or give a run's directory with --state DIR", dir)
	} else if err == nil && !fi.IsDir() {
		return Invalidf("--state %s is not a directory: give the state directory of a run", dir)
	}
	rd, err := journal.ReadOnly(dir)
	if err != nil {
		return err
	}
	records, err := rd.Replay()
	if err != nil {
		return err
	}
	if !hasTasks(records) {
		return Invalidf("the journal in %s records no task yet: nothing to report; run a plan there first (sealflow run PLAN --state %s), or wait until a task has started", dir, dir)
	}
	in := report.Input{
		Records:  records,
		Now:      now(),
		InUse:    rd.InUse(),
		StateDir: dir,
		Log: func(step, host string) ([]byte, error) {
			return readTail(rd.LogPath(step, host), 64<<10)
		},
	}
	if p, err := loadSaved(rd, steps.Builtin()); err == nil {
		in.Plan = reportPlan(p)
	} else {
		in.PlanErr = err.Error()
	}
	rep := report.Build(in)
	if out == "-" {
		return report.Write(io.Stdout, rep)
	}
	if err := writeReport(out, rep); err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "report of %s (%d tasks%s) written to %s\n", rep.Title, len(rep.Tasks), failedText(rep), out)
	return nil
}

func hasTasks(records []journal.Record) bool {
	for _, r := range records {
		if r.Step != "" {
			return true
		}
	}
	return false
}

func failedText(rep *report.Report) string {
	if n := rep.Counts[report.StateFailed]; n > 0 {
		return fmt.Sprintf(", %d failed", n)
	}
	return ""
}

// reportPlan is the plan's shape as the report needs it.
func reportPlan(p *plans.Plan) *report.Plan {
	rp := &report.Plan{Name: p.Name, Upstream: map[report.TaskKey][]report.TaskKey{}}
	for _, s := range p.Steps {
		st := report.Step{ID: s.ID, Kind: s.Kind, Needs: s.Needs}
		for _, h := range s.Targets {
			st.Hosts = append(st.Hosts, h.Name)
		}
		rp.Steps = append(rp.Steps, st)
	}
	for _, g := range p.Groups {
		rg := report.Group{Name: g.Name}
		for _, h := range g.Hosts {
			rg.Hosts = append(rg.Hosts, h.Name)
		}
		rp.Groups = append(rp.Groups, rg)
	}
	for id, ups := range engine.Upstream(p) {
		k := report.TaskKey{Step: id.Step, Host: id.Host}
		for _, u := range ups {
			rp.Upstream[k] = append(rp.Upstream[k], report.TaskKey{Step: u.Step, Host: u.Host})
		}
	}
	return rp
}

// readTail returns at most the last max bytes of a file.
func readTail(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := int64(0)
	if fi.Size() > max {
		off = fi.Size() - max
	}
	return io.ReadAll(io.NewSectionReader(f, off, max))
}

// writeReport writes the page next to path and renames it over path, so a
// browser reloading it never reads half a page.
func writeReport(path string, rep *report.Report) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	err = report.Write(tmp, rep)
	if err == nil {
		err = tmp.Chmod(0o600) // it holds log tails, as private as the logs
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
}
