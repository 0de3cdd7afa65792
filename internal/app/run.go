package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

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
	// PlanPath is the plan file's absolute path ("" for a shipped plan):
	// resume says when it changed since the run.
	PlanPath string `json:"plan_path,omitempty"`
	// Connect is how the run reached its hosts, for resume. Never a
	// password: only whether one was given, and how.
	Connect *savedConnect `json:"connect,omitempty"`
}

type savedConnect struct {
	KnownHosts    string        `json:"known_hosts,omitempty"` // absolute
	HostKeyCheck  string        `json:"host_key_check,omitempty"`
	DialTimeout   time.Duration `json:"dial_timeout,omitempty"`
	PasswordStdin bool          `json:"password_stdin,omitempty"`
	PasswordFlag  bool          `json:"password_flag,omitempty"` // --passwd was given (its value is not saved)
}

func saveConnect(o ConnectOptions) *savedConnect {
	sc := &savedConnect{HostKeyCheck: o.HostKeyCheck, DialTimeout: o.DialTimeout, PasswordStdin: o.PasswordStdin, PasswordFlag: o.Password != ""}
	if o.KnownHosts != "" {
		sc.KnownHosts = o.KnownHosts
		if abs, err := filepath.Abs(o.KnownHosts); err == nil {
			sc.KnownHosts = abs
		}
	}
	return sc
}

// reuseConnect fills what resume was not told with what the run was
// given, and says so.
func reuseConnect(o ConnectOptions, saved *savedConnect, io IO) ConnectOptions {
	if saved == nil {
		return o
	}
	var used []string
	if o.KnownHosts == "" && saved.KnownHosts != "" {
		o.KnownHosts = saved.KnownHosts
		used = append(used, "--known-hosts "+saved.KnownHosts)
	}
	if o.HostKeyCheck == "" && saved.HostKeyCheck != "" {
		o.HostKeyCheck = saved.HostKeyCheck
		used = append(used, "--host-key-check "+saved.HostKeyCheck)
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = saved.DialTimeout
	}
	hasPassword := o.PasswordStdin || o.Password != ""
	if !hasPassword && saved.PasswordStdin {
		o.PasswordStdin = true
		used = append(used, "--password-stdin")
	}
	if len(used) > 0 {
		fmt.Fprintf(io.Stderr, "resume: as the run: %s\n", strings.Join(used, " "))
	}
	if !hasPassword && saved.PasswordFlag {
		fmt.Fprintln(io.Stderr, "resume: the run was given --passwd, which is never saved; give --password-stdin (or --passwd) again if the hosts need it")
	}
	return o
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
		if invData, err = plans.ReadFile(o.InventoryFile); err != nil {
			return Invalidf("read inventory: %w", err)
		}
	}
	reg := steps.Builtin()
	plan, err := plans.Load(o.PlanFile, planData, plans.LoadOptions{Kinds: reg, Set: set, Inventory: invData, InventoryFile: o.InventoryFile, LookupEnv: os.LookupEnv})
	if err != nil {
		return Invalid(err)
	}
	if missing := plan.MissingSecrets(); len(missing) > 0 {
		return Invalidf("%s", strings.Join(missing, "\n"))
	}
	// Every input is checked before the state directory is created or
	// changed: a refused command leaves it as it was (or absent).
	ex, err := prepare(plan, o.ExecOptions, io)
	if err != nil {
		return err
	}
	defer ex.conns.Close()
	dir := stateDir(o.StateDir)
	existed := dirExists(dir)
	if o.Fresh || !existed {
		if err := ex.check(nil); err != nil {
			return err
		}
		ex.warm(ctx, nil)
	}
	st, err := openState(dir, io)
	if err != nil {
		return err
	}
	ran := false
	defer func() {
		st.Close()
		if !ran && !existed {
			// Nothing ran: leave no state directory behind.
			os.RemoveAll(dir)
		}
	}()
	if !o.Fresh {
		if prev, err := readMeta(st); err == nil && prev.Name != plan.Name {
			return Invalidf("state directory %s holds a run of plan %q, not %q; use another --state, or --fresh to discard it", st.Dir(), prev.Name, plan.Name)
		}
		if err := st.Lost(); err != nil {
			return Invalid(err)
		}
		records, err := replayState(st)
		if err != nil {
			return err
		}
		if err := ex.check(records); err != nil {
			return err
		}
		if existed {
			ex.warm(ctx, records)
		}
	}
	if o.Fresh {
		// The lock is held throughout: no other run slips in between.
		if err := st.Discard(); err != nil {
			return fmt.Errorf("--fresh: %w", err)
		}
		fmt.Fprintf(io.Stderr, "discarded the earlier run in %s\n", st.Dir())
	}
	// Secret vars given with --set are kept for resume sealed with the
	// state key, never in vars.json; those read from the environment are
	// not kept at all (resume reads the environment again).
	clearSet, sealedSet := map[string]string{}, map[string]string{}
	for k, v := range set {
		if _, secret := plan.SecretVars[k]; !secret {
			clearSet[k] = v
			continue
		}
		if sealedSet[k], err = st.SealValue(k, v); err != nil {
			return err
		}
	}
	varsJSON, _ := json.Marshal(clearSet)
	secretJSON, _ := json.Marshal(sealedSet)
	rm := runMeta{Name: plan.Name, PlanFile: o.PlanFile, InventoryFile: o.InventoryFile, Connect: saveConnect(o.Connect)}
	if _, shipped := plans.Shipped(o.PlanFile); !shipped || fileExists(o.PlanFile) {
		if abs, err := filepath.Abs(o.PlanFile); err == nil {
			rm.PlanPath = abs
		}
	}
	meta, _ := json.Marshal(rm)
	// An empty inventory file means the plan's own hosts.
	files := map[string][]byte{journal.PlanFile: planData, journal.VarsFile: varsJSON, journal.SecretVarsFile: secretJSON, journal.MetaFile: meta, journal.InventoryFile: invData}
	ran = true
	if err := st.SaveRun(files); err != nil {
		return err
	}
	return ex.run(ctx, st)
}

// replayState reads the journal; a missing key is the user's to fix.
func replayState(st *journal.State) ([]journal.Record, error) {
	records, err := st.Replay()
	var km *journal.KeyMissingError
	if errors.As(err, &km) {
		return nil, Invalid(err)
	}
	return records, err
}

func stateDir(dir string) string {
	if dir == "" {
		return journal.DefaultDir
	}
	return dir
}

func dirExists(dir string) bool {
	fi, err := os.Stat(dir)
	return err == nil && fi.IsDir()
}

// ResumeOptions are the options of `sealflow resume`.
type ResumeOptions struct {
	ExecOptions
}

// Resume runs again the plan saved in the state directory.
func Resume(ctx context.Context, o ResumeOptions, io IO) error {
	// Flags first: they are wrong whatever the state directory holds.
	for flag, ids := range map[string][]string{"--rerun": o.Rerun, "--skip": o.Skip} {
		if _, err := parseTaskIDs(flag, ids); err != nil {
			return err
		}
	}
	dir := stateDir(o.StateDir)
	if !dirExists(dir) {
		return Invalidf("nothing to resume: there is no state directory %s (start a run with `sealflow run PLAN`)", dir)
	}
	st, err := openState(dir, io)
	if err != nil {
		return err
	}
	defer st.Close()
	plan, err := loadSaved(st, steps.Builtin())
	if err != nil {
		return err
	}
	if missing := plan.MissingSecrets(); len(missing) > 0 {
		return Invalidf("%s", strings.Join(missing, "\n"))
	}
	if err := st.Lost(); err != nil {
		return Invalid(err)
	}
	records, err := replayState(st)
	if err != nil {
		return err
	}
	eo := o.ExecOptions
	if meta, err := readMeta(st); err == nil {
		eo.Connect = reuseConnect(eo.Connect, meta.Connect, io)
		notePlanChanged(st, meta, io)
	}
	ex, err := prepare(plan, eo, io)
	if err != nil {
		return err
	}
	defer ex.conns.Close()
	if err := ex.check(records); err != nil {
		return err
	}
	ex.warm(ctx, records)
	return ex.run(ctx, st)
}

// notePlanChanged says when the plan file on disk is no longer the one
// the run saved: resume runs the saved one.
func notePlanChanged(st *journal.State, meta runMeta, io IO) {
	if meta.PlanPath == "" {
		return
	}
	saved, err := st.ReadRunFile(journal.PlanFile)
	if err != nil {
		return
	}
	now, err := os.ReadFile(meta.PlanPath)
	if err != nil || bytes.Equal(now, saved) {
		return
	}
	fmt.Fprintf(io.Stderr, "resume: %s changed since the run; resume runs the plan saved with the run.\n"+
		"  To apply the edited plan: sealflow run %s --state %s (done tasks whose fingerprint is unchanged are not run again)\n",
		meta.PlanPath, meta.PlanPath, st.Dir())
}

func fileExists(name string) bool {
	st, err := os.Stat(name)
	return err == nil && st.Mode().IsRegular()
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
	if b, err := st.ReadRunFile(journal.SecretVarsFile); err == nil && len(b) > 0 {
		var sealed map[string]string
		if err := json.Unmarshal(b, &sealed); err != nil {
			return nil, fmt.Errorf("read saved secret vars: %w", err)
		}
		// Only a state with its key can open them; a reader without it
		// loads the plan with those vars empty.
		if o, ok := st.(interface {
			OpenValue(name, sealed string) (string, error)
		}); ok {
			if set == nil {
				set = map[string]string{}
			}
			for k, v := range sealed {
				clear, err := o.OpenValue(k, v)
				if err != nil {
					return nil, Invalidf("secret var %s saved with the run: %w", k, err)
				}
				set[k] = clear
			}
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
	plan, err := plans.Load(name, planData, plans.LoadOptions{Kinds: reg, Set: set, Inventory: inv, InventoryFile: meta.InventoryFile, LookupEnv: os.LookupEnv})
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

// execution is a run checked and ready: its options and connections.
type execution struct {
	plan  *plans.Plan
	opts  ExecOptions
	io    IO
	rerun []engine.TaskID
	skip  []engine.TaskID
	conns *connector
}

// prepare checks the options of run and resume that need no state
// directory and makes the connector (no host is reached yet).
func prepare(plan *plans.Plan, o ExecOptions, io IO) (*execution, error) {
	rerun, err := parseTaskIDs("--rerun", o.Rerun)
	if err != nil {
		return nil, err
	}
	skip, err := parseTaskIDs("--skip", o.Skip)
	if err != nil {
		return nil, err
	}
	conns, err := newConnector(o.Connect, io)
	if err != nil {
		return nil, err
	}
	return &execution{plan: plan, opts: o, io: io, rerun: rerun, skip: skip, conns: conns}, nil
}

func (ex *execution) engineOptions(st *journal.State) engine.Options {
	return engine.Options{
		Plan:      ex.plan,
		State:     st,
		Connect:   ex.conns.Connect,
		Parallel:  ex.opts.Parallel,
		KeepGoing: ex.opts.KeepGoing,
		Limit:     ex.opts.Limit,
		Rerun:     ex.rerun,
		Skip:      ex.skip,
	}
}

// check is what the engine would refuse, judged against records.
func (ex *execution) check(records []journal.Record) error {
	if err := checkLocalFiles(ex.plan, records); err != nil {
		return err
	}
	if err := engine.Check(ex.engineOptions(nil), records); err != nil {
		var inErr *engine.InputError
		if errors.As(err, &inErr) {
			return Invalid(err)
		}
		return err
	}
	return nil
}

// warm connects, ahead of the run, to the hosts its first tasks run on,
// once the run is known to go ahead (records: the journal it resumes).
func (ex *execution) warm(ctx context.Context, records []journal.Record) {
	ex.conns.Warm(ctx, engine.StartHosts(ex.engineOptions(nil), records))
}

func (ex *execution) run(ctx context.Context, st *journal.State) error {
	io := ex.io
	sink := ui.New(io.Stdout, ui.Options{Mode: ui.Mode(ex.opts.Output), TTY: io.TTY, Size: io.Size, Resized: io.Resized, Color: io.Color})
	defer sink.Close()
	// Warnings while the run shows (host keys learned, ...) go above the
	// live view, not through it.
	ex.conns.setStderr(sink.Above(io.Stderr))
	// Ctrl-C: the view says what is being cancelled while it stops.
	defer context.AfterFunc(ctx, sink.Interrupt)()
	opts := ex.engineOptions(st)
	opts.Events = sink.Event
	res, err := engine.Run(ctx, opts)
	var inErr *engine.InputError
	if errors.As(err, &inErr) {
		return Invalid(err)
	}
	if err != nil {
		return err
	}
	// A run whose journal could not be written (a full disk) is no
	// success, whatever its tasks did: resume would not know of them.
	if err := st.Sync(); err != nil {
		return fmt.Errorf("the run's journal could not be written, so it does not hold every task's outcome: %w; "+
			"free space in %s, then `sealflow resume` (tasks not recorded as done run again, or are asked about)", err, st.Dir())
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
	dir = stateDir(dir)
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
	data, err := plans.ReadFile(name)
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
