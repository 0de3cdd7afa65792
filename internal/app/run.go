package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sealflow/sealflow/internal/engine"
	"github.com/sealflow/sealflow/internal/journal"
	"github.com/sealflow/sealflow/internal/ui"
	"github.com/sealflow/sealflow/plans"
	"github.com/sealflow/sealflow/steps"
)

// ExecOptions are shared by run and resume.
type ExecOptions struct {
	StateDir  string
	Parallel  int
	KeepGoing bool
	Limit     []string
	Output    string // auto | plain | json
	Rerun     []string
	Skip      []string
	Connect   ConnectOptions
}

// RunOptions are the options of `sealflow run`.
type RunOptions struct {
	ExecOptions
	PlanFile      string
	InventoryFile string
	Set           []string // key=value
	// Fresh discards the state directory's journal of an earlier run.
	Fresh bool
}

type runMeta struct {
	Name          string `json:"name"`
	PlanFile      string `json:"plan_file"`
	InventoryFile string `json:"inventory_file,omitempty"`
}

// Run loads the plan, saves it in the state directory with its inventory
// and vars, and runs it. Tasks done in an earlier run of the same plan
// whose fingerprint is unchanged are not run again.
func Run(ctx context.Context, o RunOptions, io IO) error {
	set, err := parseSet(o.Set)
	if err != nil {
		return err
	}
	planData, err := readPlan(o.PlanFile)
	if err != nil {
		return err
	}
	var invData []byte
	if o.InventoryFile != "" {
		if invData, err = os.ReadFile(o.InventoryFile); err != nil {
			return Invalidf("read inventory: %w", err)
		}
	}
	reg := steps.Builtin()
	plan, err := plans.Load(o.PlanFile, planData, plans.LoadOptions{Kinds: reg, Set: set, Inventory: invData, InventoryFile: o.InventoryFile})
	if err != nil {
		return Invalid(err)
	}
	st, err := openState(o.StateDir, io)
	if err != nil {
		return err
	}
	defer st.Close()
	if prev, err := readMeta(st); err == nil && prev.Name != plan.Name && !o.Fresh {
		return Invalidf("state directory %s holds a run of plan %q, not %q; use another --state, or --fresh to discard it", st.Dir(), prev.Name, plan.Name)
	}
	if o.Fresh {
		// The lock is held throughout: no other run slips in between.
		if err := st.Discard(); err != nil {
			return fmt.Errorf("--fresh: %w", err)
		}
		fmt.Fprintf(io.Stderr, "discarded the earlier run in %s\n", st.Dir())
	}
	varsJSON, _ := json.Marshal(set)
	meta, _ := json.Marshal(runMeta{Name: plan.Name, PlanFile: o.PlanFile, InventoryFile: o.InventoryFile})
	// An empty inventory file means the plan's own hosts.
	files := map[string][]byte{journal.PlanFile: planData, journal.VarsFile: varsJSON, journal.MetaFile: meta, journal.InventoryFile: invData}
	if err := st.SaveRun(files); err != nil {
		return err
	}
	return execute(ctx, plan, st, o.ExecOptions, io)
}

// ResumeOptions are the options of `sealflow resume`.
type ResumeOptions struct {
	ExecOptions
}

// Resume runs again the plan saved in the state directory.
func Resume(ctx context.Context, o ResumeOptions, io IO) error {
	st, err := openState(o.StateDir, io)
	if err != nil {
		return err
	}
	defer st.Close()
	plan, err := loadSaved(st, steps.Builtin())
	if err != nil {
		return err
	}
	return execute(ctx, plan, st, o.ExecOptions, io)
}

// savedReader is what loadSaved needs of a state directory.
type savedReader interface {
	ReadRunFile(name string) ([]byte, error)
}

func loadSaved(st savedReader, reg *steps.Registry) (*plans.Plan, error) {
	planData, err := st.ReadRunFile(journal.PlanFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, Invalidf("nothing to resume: the state directory holds no run (start one with `sealflow run PLAN`)")
	}
	if err != nil {
		return nil, err
	}
	var set map[string]string
	if b, err := st.ReadRunFile(journal.VarsFile); err == nil && len(b) > 0 {
		if err := json.Unmarshal(b, &set); err != nil {
			return nil, fmt.Errorf("read saved vars: %w", err)
		}
	}
	inv, err := st.ReadRunFile(journal.InventoryFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if len(inv) == 0 {
		inv = nil
	}
	var meta runMeta
	if b, err := st.ReadRunFile(journal.MetaFile); err == nil {
		json.Unmarshal(b, &meta)
	}
	name := meta.PlanFile
	if name == "" {
		name = journal.PlanFile
	}
	plan, err := plans.Load(name, planData, plans.LoadOptions{Kinds: reg, Set: set, Inventory: inv, InventoryFile: meta.InventoryFile})
	if err != nil {
		return nil, Invalidf("the saved plan no longer loads: %w", err)
	}
	return plan, nil
}

func readMeta(st savedReader) (runMeta, error) {
	var m runMeta
	b, err := st.ReadRunFile(journal.MetaFile)
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

func execute(ctx context.Context, plan *plans.Plan, st *journal.State, o ExecOptions, io IO) error {
	rerun, err := parseTaskIDs("--rerun", o.Rerun)
	if err != nil {
		return err
	}
	skip, err := parseTaskIDs("--skip", o.Skip)
	if err != nil {
		return err
	}
	conns, err := newConnector(o.Connect, io)
	if err != nil {
		return err
	}
	defer conns.Close()
	sink := ui.New(io.Stdout, ui.Mode(o.Output), io.TTY)
	res, err := engine.Run(ctx, engine.Options{
		Plan:      plan,
		State:     st,
		Connect:   conns.Connect,
		Parallel:  o.Parallel,
		KeepGoing: o.KeepGoing,
		Limit:     o.Limit,
		Rerun:     rerun,
		Skip:      skip,
		Events:    sink.Event,
	})
	var inErr *engine.InputError
	if errors.As(err, &inErr) {
		return Invalid(err)
	}
	if err != nil {
		return err
	}
	switch {
	case res.Interrupted:
		return &ExitError{Code: ExitInterrupted, Err: errors.New("interrupted")}
	case !res.OK():
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("%d task(s) failed", len(res.Failures()))}
	}
	return nil
}

func openState(dir string, io IO) (*journal.State, error) {
	if dir == "" {
		dir = journal.DefaultDir
	}
	opts := journal.Options{Log: func(msg string) { fmt.Fprintln(io.Stderr, msg) }}
	if k := os.Getenv("SEALFLOW_STATE_KEY"); k != "" {
		key, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(key) != 32 {
			return nil, Invalidf("SEALFLOW_STATE_KEY must be 32 bytes in base64 (e.g. `head -c32 /dev/urandom | base64`)")
		}
		opts.Key = key
	}
	st, err := journal.Open(dir, opts)
	if errors.Is(err, journal.ErrLocked) {
		return nil, Invalid(err)
	}
	return st, err
}

// readPlan reads a plan file; a name that is no file but one of the
// shipped plans (ha, add-node, clean, demo) gives that plan.
func readPlan(name string) ([]byte, error) {
	data, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		if b, ok := plans.Shipped(name); ok {
			return b, nil
		}
		return nil, Invalidf("read plan: %w (shipped plans: %s)", err, strings.Join(plans.ShippedNames(), ", "))
	}
	if err != nil {
		return nil, Invalidf("read plan: %w", err)
	}
	return data, nil
}

func parseSet(kvs []string) (map[string]string, error) {
	set := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, Invalidf("--set %q: want key=value", kv)
		}
		set[k] = v
	}
	return set, nil
}

func parseTaskIDs(flag string, ss []string) ([]engine.TaskID, error) {
	var ids []engine.TaskID
	for _, s := range ss {
		for _, part := range strings.Split(s, ",") {
			id, err := engine.ParseTaskID(strings.TrimSpace(part))
			if err != nil {
				return nil, Invalidf("%s: %w", flag, err)
			}
			ids = append(ids, id)
		}
	}
	return ids, nil
}
