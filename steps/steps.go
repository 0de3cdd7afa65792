// Package steps holds the Step contract, the registry of step kinds and
// one file per kind. A kind declares its parameters (checked when a plan
// is loaded) and builds a Step from the parameters rendered for one host.
package steps

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/sealflow/sealflow/internal/redact"
	"github.com/sealflow/sealflow/internal/transport"
)

// Outputs are the values a task produces for the steps after it.
type Outputs map[string]string

// Host is what a step knows of the host it runs on.
type Host struct {
	Name    string
	Address string
	Groups  []string
	Labels  map[string]string
}

// Target is everything a step needs to run on one host.
type Target struct {
	Host Host
	Conn transport.Conn
	// Log receives the task's output (STATE/logs/STEP/HOST.log), with
	// every value registered in Secrets hidden.
	Log io.Writer
	// Env is added to every command's environment (SEALFLOW_HOST, ...).
	Env map[string]string
	// Become asks commands to run as root through sudo.
	Become bool
	// Secrets are the run's secret values, hidden in the task's log, its
	// errors and the run's events. Steps add to it through Secret.
	Secrets *redact.Set
	// Progress, when set, is told how far the task's uploads are. It is
	// called often (on every read of the file): it must be quick.
	Progress func(Progress)
	// StepHosts is how many hosts the task's step runs on in this run
	// (its hosts within --limit).
	StepHosts int
}

// Secret registers values as secrets of the run, so that nothing the run
// shows has them in clear text. A step calls it the moment it mints or
// receives a secret, before anything can print it.
func (t *Target) Secret(values ...string) {
	if t.Secrets != nil {
		t.Secrets.Add(values...)
	}
}

// Step is one kind's work on one host.
type Step interface {
	Run(ctx context.Context, t *Target) (Outputs, error)
}

// Checker is implemented by steps that can tell whether their work is
// already done on a host (so a re-run or an interrupted task is safe).
type Checker interface {
	Done(ctx context.Context, t *Target) (bool, Outputs, error)
}

// CanChecker is implemented by Checkers whose Done can answer only for
// some parameters; without it a Checker always can.
type CanChecker interface {
	CanCheck() bool
}

// Checks reports whether s can tell if its work is already done.
func Checks(s Step) bool {
	if _, ok := s.(Checker); !ok {
		return false
	}
	if c, ok := s.(CanChecker); ok {
		return c.CanCheck()
	}
	return true
}

// SafeToRerun reports whether an interrupted task of kind k built as s may
// run again without asking: the kind says so, or the step does (an
// optional Rerunnable() bool method), or the step can check itself.
func SafeToRerun(k *Kind, s Step) bool {
	if k.Rerunnable || Checks(s) {
		return true
	}
	if r, ok := s.(interface{ Rerunnable() bool }); ok {
		return r.Rerunnable()
	}
	return false
}

// Describer is implemented by steps that can say what they would do.
type Describer interface {
	Describe(t *Target) []string
}

// ParamType is the type a parameter takes in a plan's `with:` block.
type ParamType int

const (
	String ParamType = iota
	Int
	Bool
	StringList
	StringMap
	Duration
)

func (t ParamType) String() string {
	switch t {
	case String:
		return "string"
	case Int:
		return "integer"
	case Bool:
		return "boolean"
	case StringList:
		return "list of strings"
	case StringMap:
		return "map of strings"
	case Duration:
		return "duration"
	}
	return "unknown"
}

// Param describes one parameter of a kind.
type Param struct {
	Name     string
	Type     ParamType
	Required bool
	Doc      string
}

// Params are the parameters of one task, rendered for its host. Values
// are string, int, bool, []string or map[string]string as declared.
type Params map[string]any

// Kind is a registered step kind.
type Kind struct {
	Name   string
	Doc    string
	Params []Param
	// Rerunnable says that running the step twice on a host is harmless,
	// so an interrupted task may simply run again on resume.
	Rerunnable bool
	// New builds the step from rendered parameters. It returns an error
	// naming the parameter when a value is invalid.
	New func(p Params) (Step, error)
	// LoadCheck says New only checks values (no I/O): the plan loader calls
	// it on each task whose parameters render from vars, groups and the
	// host alone, so that a bad value is a load error (exit 2) before any
	// host is touched.
	LoadCheck bool
	// LocalFiles names the parameters that are files of the control
	// machine the step reads (copy's src): a run checks they exist
	// before it starts, where it can (steps without needs), and their
	// content is part of the task's fingerprint (an edited file runs the
	// task again).
	LocalFiles []string
	// Sums is the cache of local file sums the kind's steps keep (nil:
	// none); a run's fingerprints of LocalFiles use it too, so that a file
	// is read once per run, not once for the fingerprint and again to send.
	Sums *FileSums
	// Secret lists outputs whose values are secrets (redacted in logs,
	// encrypted in the journal). The shell kind's secret_outputs adds to it.
	Secret []string
	// EveryRun says a task done in an earlier run runs again on every run
	// (and resume) instead of being restored from the journal: its outputs
	// depend on time (credentials that expire). It must be Rerunnable, and
	// return the same outputs while nothing changed, so that the tasks
	// reading them stay unchanged.
	EveryRun bool
}

// Param returns the declared parameter called name.
func (k *Kind) Param(name string) (Param, bool) {
	for _, p := range k.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

// Registry maps kind names to kinds.
type Registry struct {
	kinds map[string]*Kind
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{kinds: map[string]*Kind{}} }

// Register adds k; it panics on a duplicate name (a programming error).
func (r *Registry) Register(k *Kind) {
	if _, dup := r.kinds[k.Name]; dup {
		panic(fmt.Sprintf("steps: kind %q registered twice", k.Name))
	}
	r.kinds[k.Name] = k
}

// Lookup returns the kind called name.
func (r *Registry) Lookup(name string) (*Kind, bool) {
	k, ok := r.kinds[name]
	return k, ok
}

// Names returns the registered kind names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.kinds))
	for n := range r.kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Builtin returns a new registry holding every kind shipped with sealflow.
func Builtin() *Registry {
	r := NewRegistry()
	r.Register(shellKind())
	r.Register(copyKind())
	r.Register(distributeKind())
	r.Register(untarKind())
	r.Register(initScriptKind())
	r.Register(hostsKind())
	r.Register(kubeadmInitKind())
	r.Register(joinCredentialsKind())
	r.Register(joinKind())
	r.Register(lvscareKind())
	r.Register(resetKind())
	r.Register(verifyKind())
	r.Register(kubeApplyKind())
	return r
}
