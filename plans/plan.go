// Package plans holds the plan format: strict decoding with positions,
// validation, host selectors and expressions.
//
// A plan is a YAML file with a name, vars, an inventory of hosts in groups
// and a list of steps. Load checks everything it can before anything runs:
// every problem comes back in an ErrorList, each with its file:line:col.
package plans

import (
	"fmt"
	"sort"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/sealflow/sealflow/steps"
)

// Plan is a loaded, validated plan.
type Plan struct {
	Name string
	File string
	Vars map[string]any // after LoadOptions.Set
	// SecretVars names the vars declared {secret: true}: their values are
	// never written in clear (state directory, logs, journal). Each maps to
	// the environment variable it is read from ("" when only --set gives
	// it).
	SecretVars map[string]string
	Hosts      []*Host  // every host once, inventory order
	Groups     []*Group // in file order
	Steps      []*Step  // in file order

	groupViews map[string][]HostView
	stepByID   map[string]*Step
	hostByName map[string]*Host
}

// MissingSecrets lists, sorted, the secret vars that have no value, each
// with how to give it.
func (p *Plan) MissingSecrets() []string {
	var out []string
	for name, env := range p.SecretVars {
		if v, _ := p.Vars[name].(string); v != "" {
			continue
		}
		how := "--set " + name + "=VALUE"
		if env != "" {
			how = "$" + env + " or " + how
		}
		out = append(out, fmt.Sprintf("var %s is secret and has no value: give it with %s", name, how))
	}
	sort.Strings(out)
	return out
}

// SecretValues returns the values of the secret vars that have one.
func (p *Plan) SecretValues() []string {
	var out []string
	for name := range p.SecretVars {
		if v, _ := p.Vars[name].(string); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// index builds the lookups of Step and Host (engines call them per task).
func (p *Plan) index() {
	p.stepByID = make(map[string]*Step, len(p.Steps))
	for _, s := range p.Steps {
		p.stepByID[s.ID] = s
	}
	p.hostByName = make(map[string]*Host, len(p.Hosts))
	for _, h := range p.Hosts {
		p.hostByName[h.Name] = h
	}
}

// Step returns the step called id, or nil.
func (p *Plan) Step(id string) *Step {
	if p.stepByID != nil {
		return p.stepByID[id]
	}
	for _, s := range p.Steps {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// Host returns the host called name, or nil.
func (p *Plan) Host(name string) *Host {
	if p.hostByName != nil {
		return p.hostByName[name]
	}
	for _, h := range p.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Group returns the group called name, or nil.
func (p *Plan) Group(name string) *Group {
	for _, g := range p.Groups {
		if g.Name == name {
			return g
		}
	}
	return nil
}

// Group is a named list of hosts, in the order the inventory lists them.
type Group struct {
	Name  string
	Hosts []*Host
}

// Host is one machine of the inventory.
type Host struct {
	Name    string
	Address string // "local" for the local transport
	User    string
	Port    int
	Labels  map[string]string
	Groups  []string // the groups it is in, in inventory order
	Index   int      // its index in its first group

	Key              string // private key file
	KeyPassphraseEnv string
	PasswordEnv      string
	PasswordFile     string
	Become           bool
	// TTY asks the server for a pseudo-terminal for every command (sudo
	// with `Defaults requiretty` needs one).
	TTY     bool
	Bastion *Bastion
	Pos     Position // where the host first appears
}

// Local reports whether the host is reached through the local transport.
func (h *Host) Local() bool { return h.Address == "local" }

// Bastion is a jump host.
type Bastion struct {
	Address string
	User    string
	Port    int
	Key     string
}

// Step is one step of a plan.
type Step struct {
	ID      string
	Kind    string
	On      string
	Needs   []string
	When    string
	With    map[string]any // raw, as decoded
	Retries int
	Timeout time.Duration
	Serial  int // 0: no limit
	Become  *bool
	Pos     Position // position of the step's mapping

	Targets []*Host // hosts selected by On, in inventory order
	KindDef *steps.Kind
	// Reads lists the steps whose outputs the step's expressions read
	// (steps.X, steps["X"]); ReadsAny is set when they index `steps`
	// otherwise, so any needed step may be read.
	Reads    []string
	ReadsAny bool
	// Upstream lists, for a step with ReadsAny, every step it needs,
	// directly or not, in plan order: the steps whose outputs it may read.
	// It is nil for other steps (computing it for every step of a long
	// chain would be quadratic in its length).
	Upstream []string
	// ReadsHosts lists the steps whose per-host outputs (steps.X.hosts)
	// the step reads ("*": chosen dynamically). A task of such a step
	// waits for every host of X, not only its own.
	ReadsHosts []string

	when     *vm.Program
	whenPos  Position
	params   []*param // `with`, compiled, in file order
	needsPos map[string]Position
	onPos    Position
	fieldPos map[string]Position // position of each key of the step
}

// param is one entry of a step's `with`, with its templates compiled.
type param struct {
	name string
	def  steps.Param
	pos  Position
	val  *tval
}
