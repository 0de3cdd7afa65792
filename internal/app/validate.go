package app

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/sealflow/sealflow/internal/engine"
	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/plans"
	"github.com/sealflow/sealflow/steps"
)

// LoadOptions name a plan and what changes it.
type LoadOptions struct {
	PlanFile      string
	InventoryFile string
	Set           []string
}

func load(o LoadOptions) (*plans.Plan, error) {
	set, err := parseSet(o.Set)
	if err != nil {
		return nil, err
	}
	data, err := readPlan(o.PlanFile)
	if err != nil {
		return nil, err
	}
	var inv []byte
	if o.InventoryFile != "" {
		if inv, err = plans.ReadFile(o.InventoryFile); err != nil {
			return nil, Invalidf("read inventory: %w", err)
		}
	}
	p, err := plans.Load(o.PlanFile, data, plans.LoadOptions{Kinds: steps.Builtin(), Set: set, Inventory: inv, InventoryFile: o.InventoryFile, LookupEnv: os.LookupEnv})
	if err != nil {
		return nil, Invalid(err)
	}
	return p, nil
}

// Validate loads a plan and reports what it holds; it contacts no host.
func Validate(o LoadOptions, io IO) error {
	p, err := load(o)
	if err != nil {
		return err
	}
	tasks := 0
	for _, s := range p.Steps {
		tasks += len(s.Targets)
	}
	fmt.Fprintf(io.Stdout, "%s: plan %q is valid: %d steps, %d hosts, %d tasks\n", o.PlanFile, p.Name, len(p.Steps), len(p.Hosts), tasks)
	return nil
}

// PlanOptions are the options of `sealflow plan`.
type PlanOptions struct {
	LoadOptions
	StateDir string
}

// Plan prints what a run would do with each task, given the journal of
// the state directory, through the engine's own decision (engine.Preview):
// the decision, why, and what the step would do on the host (its
// Describe text). It runs nothing and writes nothing.
func Plan(o PlanOptions, io IO) error {
	p, err := load(o.LoadOptions)
	if err != nil {
		return err
	}
	dir := o.StateDir
	if dir == "" {
		dir = journal.DefaultDir
	}
	var records []journal.Record
	if _, err := os.Stat(dir); err == nil {
		rd, err := journal.ReadOnly(dir)
		if err != nil {
			return err
		}
		recs, err := rd.Replay()
		if err != nil {
			return err
		}
		// The journal of another plan says nothing of this one's tasks.
		if m, err := readMeta(rd); err == nil && m.Name == p.Name {
			records = recs
		}
	}
	previews, err := engine.Preview(p, records, nil, nil)
	if err != nil {
		var ie *engine.InputError
		if errors.As(err, &ie) {
			return Invalid(err)
		}
		return err
	}
	byStep := map[string][]engine.TaskPreview{}
	for _, pv := range previews {
		byStep[pv.ID.Step] = append(byStep[pv.ID.Step], pv)
	}
	out := bufio.NewWriter(io.Stdout) // as in Status
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tKIND\tHOST\tWOULD\tWHY\tWHAT\t")
	for _, s := range p.Steps {
		if len(s.Targets) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\tnothing\t`on: %s` selects no host\t\t\n", s.ID, s.Kind, s.On)
		}
		for _, pv := range byStep[s.ID] {
			would := string(pv.Verdict.Decision)
			if pv.When != "" {
				would += " if " + pv.When
			}
			what := strings.Join(pv.Describe, "; ")
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", s.ID, s.Kind, pv.ID.Host, would, pv.Verdict.Reason, what)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return out.Flush()
}

// GraphOptions are the options of `sealflow graph`.
type GraphOptions struct {
	LoadOptions
	Format string // dot | mermaid
}

// Graph prints the plan's steps and their needs as Graphviz dot or Mermaid.
func Graph(o GraphOptions, io IO) error {
	p, err := load(o.LoadOptions)
	if err != nil {
		return err
	}
	var b strings.Builder
	switch o.Format {
	case "", "dot":
		fmt.Fprintf(&b, "digraph %q {\n  rankdir=LR;\n  node [shape=box];\n", p.Name)
		for _, s := range p.Steps {
			fmt.Fprintf(&b, "  %q [label=%q];\n", s.ID, fmt.Sprintf("%s\n%s on %s (%d)", s.ID, s.Kind, onText(s), len(s.Targets)))
		}
		for _, s := range p.Steps {
			for _, n := range sorted(s.Needs) {
				fmt.Fprintf(&b, "  %q -> %q;\n", n, s.ID)
			}
		}
		b.WriteString("}\n")
	case "mermaid":
		b.WriteString("graph LR\n")
		ids := map[string]string{}
		for i, s := range p.Steps {
			ids[s.ID] = fmt.Sprintf("s%d", i)
			fmt.Fprintf(&b, "  %s[\"%s<br/>%s on %s (%d)\"]\n", ids[s.ID], s.ID, s.Kind, strings.ReplaceAll(onText(s), `"`, "#quot;"), len(s.Targets))
		}
		for _, s := range p.Steps {
			for _, n := range sorted(s.Needs) {
				fmt.Fprintf(&b, "  %s --> %s\n", ids[n], ids[s.ID])
			}
		}
	default:
		return Invalidf("--format %q: want dot or mermaid", o.Format)
	}
	_, err = fmt.Fprint(io.Stdout, b.String())
	return err
}

func onText(s *plans.Step) string {
	if s.On == "" {
		return "all"
	}
	return s.On
}

func sorted(ss []string) []string {
	out := append([]string(nil), ss...)
	sort.Strings(out)
	return out
}
